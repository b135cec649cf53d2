"""The backend interface: everything model-specific lives behind it, and a registry of backends.

A backend loads a checkpoint, turns input items into model inputs plus a :class:`TokenLayout`,
and runs the two forwards the engine needs: a prefill over the prompt minus its last token
(plain SDPA, no capture), and single-token decode steps (during which the capture attention
hands the active recorder its rows). The engine knows nothing else about the model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch

from ..capture import register_capture_attention
from ..config import SourceConfig
from ..errors import OmniTraceError, UnknownNameError
from ..inputs import Item
from ..layout import TokenLayout
from ..media import MediaLimits

logger = logging.getLogger(__name__)


@dataclass
class PreparedInput:
    """A prompt ready for the model.

    Attributes:
        input_ids: (1, L) prompt token ids on the model's input device.
        layout: where each of the L tokens sits.
        labels: display name of every input item.
        model_inputs: extra prefill arguments (pixel values, audio features, grids ...).
        extras: backend-private values (e.g. rope deltas) needed by its decode steps.
        media: per item, a summary of the loaded media (size, duration, fps ...), for results.
    """

    input_ids: torch.Tensor
    layout: TokenLayout
    labels: list[str]
    model_inputs: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    media: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])


class Backend(ABC):
    """A model family's adapter. Subclasses set ``name`` and ``model_types``."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    #: The family's model code ships with the checkpoint (loading it needs ``trust_remote_code``).
    requires_remote_code: ClassVar[bool] = False

    def __init__(self, model: torch.nn.Module, processor: Any, model_id: str) -> None:
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.model.requires_grad_(False)  # attgrads makes its own leaves; weights never need grads
        self._use_capture_attention()

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_pretrained(
        cls,
        model_id: str,
        *,
        dtype: str | torch.dtype = "auto",
        device: str | None = None,
        device_map: str | dict | None = None,
        trust_remote_code: bool = False,
        limits: MediaLimits = MediaLimits(),
    ) -> "Backend":
        """Load a checkpoint (Hub id or local folder); ``limits`` guard the media it will read."""

    @abstractmethod
    def text_model_config(self) -> Any:
        """The config of the text decoder (its ``_attn_implementation`` runs the capture)."""

    def _use_capture_attention(self) -> None:
        name = register_capture_attention()
        self.model.set_attn_implementation({self.text_config_key: name})
        if self.text_model_config()._attn_implementation != name:
            raise RuntimeError(f"could not switch the text decoder of {self.model_id} to capture attention")

    text_config_key: ClassVar[str] = "text_config"

    # -- facts -----------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def num_layers(self) -> int:
        return int(self.text_model_config().num_hidden_layers)

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """Decoder layers with softmax attention, whose rows can be captured (hybrid decoders mix in
        linear-attention layers, which have none)."""
        return tuple(range(self.num_layers))

    def signal_layers(self, signal: Any) -> tuple[int, ...]:
        """The decoder layers a signal reads: its ``layers(n)`` picks among the n attention layers."""
        attention = self.attention_layers
        return tuple(attention[i] for i in signal.layers(len(attention)))

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    @abstractmethod
    def eos_token_ids(self) -> frozenset[int]:
        """Token ids that end generation."""

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens dropped."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    # -- running ---------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, items: Sequence[Item], sources: SourceConfig, system_prompt: str | None = None) -> PreparedInput:
        """Load media, apply the chat template, tokenise and lay out the prompt."""

    @abstractmethod
    def prefill(self, prepared: PreparedInput) -> Any:
        """Run the prompt minus its last token; return the KV cache."""

    @abstractmethod
    def step(self, prepared: PreparedInput, token_id: int, position: int, cache: Any) -> torch.Tensor:
        """One decode step of ``token_id`` at sequence index ``position``; returns (vocab,) logits."""

    # -- teacher forcing (verification, :mod:`omnitrace_core.verification`) ----------------
    def lm_inputs(self, prepared: PreparedInput, generated: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """What the language model reads for the prompt followed by the generated tokens but the last.

        Returns:
            inputs_embeds (1, N, hidden) and position_ids (..., 1, N), N = L + len(generated) - 1: the
            row at L - 1 + t predicts generated token t.
        """
        raise NotImplementedError(f"{self.name} backends cannot teacher-force yet, so they cannot be verified")

    def lm_forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, cache: Any = None) -> torch.Tensor:
        """The decoder alone over (B, S, hidden) embeddings at ``position_ids`` (..., B, S), after what
        ``cache`` holds (appended to it); returns the final hidden states (B, S, hidden).

        ``attention_mask``: None (causal), or a (B, 1, S, cached + S) boolean mask, True where a query
        may attend to a key.
        """
        raise NotImplementedError(f"{self.name} backends cannot teacher-force yet, so they cannot be verified")

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits (..., vocab) of final hidden states (..., hidden)."""
        raise NotImplementedError(f"{self.name} backends cannot teacher-force yet, so they cannot be verified")

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        """Arguments for the model's own ``generate`` on the same prompt (the untraced baseline)."""
        return {"input_ids": prepared.input_ids, "attention_mask": torch.ones_like(prepared.input_ids),
                **prepared.model_inputs}


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Register a backend class for its ``model_types`` (usable as a decorator)."""
    for model_type in cls.model_types:
        _BACKENDS[model_type] = cls
    return cls


def list_backends() -> dict[str, str]:
    """model_type -> backend name, for every supported architecture."""
    return {model_type: cls.name for model_type, cls in sorted(_BACKENDS.items())}


def backend_for_model_type(model_type: str) -> type[Backend]:
    try:
        return _BACKENDS[model_type]
    except KeyError:
        raise UnknownNameError(
            f"no backend supports model_type '{model_type}'; supported: {', '.join(sorted(_BACKENDS))}"
        ) from None


class RemoteCodeRefused(OmniTraceError, PermissionError):
    """A checkpoint needs code shipped with it (transformers "remote code") and the caller did not opt in."""


def load_backend(model_id: str, **kwargs: Any) -> Backend:
    """Load a checkpoint with the backend registered for its ``model_type``.

    The ``model_type`` is read from the checkpoint's ``config.json`` without running any of its code,
    so an unsupported or remote-code checkpoint is refused before anything executes.

    Args:
        model_id: Hub id or local folder.
        **kwargs: ``dtype``, ``device``, ``device_map``, ``trust_remote_code``, ``limits``.

    Raises:
        UnknownNameError: no backend supports the checkpoint's ``model_type`` (the message lists them).
        RemoteCodeRefused: the family runs code shipped with the checkpoint and
            ``trust_remote_code`` is not set.
    """
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(model_id)
    model_type = config.get("model_type", "")
    cls = backend_for_model_type(model_type)
    if cls.requires_remote_code and not kwargs.get("trust_remote_code", False):
        raise RemoteCodeRefused(
            f"{model_id} ({model_type}) is loaded by Python code that ships with the checkpoint, not by "
            "transformers: loading it runs that code on this machine with your permissions. Opt in only for "
            "checkpoints whose code you trust: trust_remote_code=True (CLI: --trust-remote-code)."
        )
    return cls.from_pretrained(model_id, **kwargs)
