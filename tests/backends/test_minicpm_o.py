"""MiniCPM-o (remote code): the opt-in refusal, and the backend against stand-ins of the published code.

The real model and processor ship as Python files with the checkpoint and cannot be fetched here.
``FakeMiniCPMOProcessor`` reproduces the published processor's contract (the ``(<image>./</image>)``
and ``(<audio>./</audio>)`` tags, their ``<image>/<slice>/<|audio_start|>`` expansions, the whole
expanded prompt tokenised at once, ``image_bound`` / ``audio_bounds`` found from the wrapper tokens,
audio token counts by the published formula); ``FakeMiniCPMO`` has the published model surface
(``llm`` = a real ``Qwen3ForCausalLM``, ``get_vllm_embedding``, ``get_omni_embedding``) with small
stand-in encoders. What these tests show is that the backend drives that interface correctly; they
do not show that the real checkpoint follows it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from omnitrace_core import AudioItem, ImageItem, SourceConfig, TextItem, Tracer, VideoItem, load_backend
from omnitrace_core import layout as L
from omnitrace_core.backends.base import RemoteCodeRefused
from omnitrace_core.backends.minicpm_o import MiniCPMOBackend
from omnitrace_core.capture import CAPTURE_ATTENTION
from tests.backends import tiny_families as tf

TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "</image>", "<slice>", "</slice>", "<unk>",
          "<|audio_start|>", "<|audio_end|>", "<unit>", "<|spk_bos|>", "<|spk_eos|>")
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QUERIES = 4  # resampler queries per view
SLICE_ABOVE = 100  # images wider than this get two slices


class FakeMiniCPMOProcessor:
    """The published MiniCPMOProcessor's contract, on a local tokenizer and toy features."""

    def __init__(self, tokenizer):
        from transformers import WhisperFeatureExtractor

        self.tokenizer = tokenizer
        self.feature_extractor = WhisperFeatureExtractor(feature_size=8)

    def _image(self, image) -> tuple[str, list[torch.Tensor]]:
        pixels = torch.as_tensor(np.array(image.convert("RGB")), dtype=torch.float32).permute(2, 0, 1) / 255
        views = [pixels]
        text = "<image>" + "<unk>" * QUERIES + "</image>"
        if image.width > SLICE_ABOVE:
            half = pixels.shape[2] // 2
            views += [pixels[:, :, :half], pixels[:, :, half:]]
            text += "\n" + ("<slice>" + "<unk>" * QUERIES + "</slice>") * 2
        return text, views

    def _audio(self, wave) -> str:
        pool_step = 2
        feature_lens = (int(np.ceil(len(wave) / self.feature_extractor.hop_length)) - 1) // 2 + 1
        return "<|audio_start|>" + "<unk>" * ((feature_lens - pool_step) // pool_step + 1) + "<|audio_end|>"

    def __call__(self, text, images=None, audios=None, max_slice_nums=None, use_image_id=True, chunk_input=False,
                 return_tensors="pt"):
        import re

        (prompt,) = text
        images, audios = (images or [[]])[0], (audios or [[]])[0]
        chunks = re.split(r"(\(<image>\./</image>\)|\(<audio>\./</audio>\))", prompt)
        image_iter, audio_iter = iter(images), iter(audios)
        pixel_values, features = [], []
        for i, chunk in enumerate(chunks):
            if chunk == "(<image>./</image>)":
                chunks[i], views = self._image(next(image_iter))
                pixel_values += views
            elif chunk == "(<audio>./</audio>)":
                wave = next(audio_iter)
                chunks[i] = self._audio(wave)
                features.append(torch.as_tensor(wave[:: self.feature_extractor.hop_length]))
        ids = torch.tensor(self.tokenizer.encode("".join(chunks)))
        tid = self.tokenizer.convert_tokens_to_ids
        starts = torch.where((ids == tid("<image>")) | (ids == tid("<slice>")))[0] + 1
        ends = torch.where((ids == tid("</image>")) | (ids == tid("</slice>")))[0]
        a_starts = torch.where(ids == tid("<|audio_start|>"))[0] + 1
        a_ends = torch.where(ids == tid("<|audio_end|>"))[0]
        return {"input_ids": ids[None], "pixel_values": [pixel_values], "tgt_sizes": [],
                "image_bound": [torch.stack([starts, ends], -1)], "audio_bounds": [torch.stack([a_starts, a_ends], -1)],
                "audio_features": features, "audio_feature_lens": [[len(f) for f in features]], "spk_bounds": []}


class FakeMiniCPMO(nn.Module):
    """The published MiniCPMO surface: ``llm`` (a real Qwen3), ``get_vllm_embedding``, ``get_omni_embedding``."""

    def __init__(self, vocab: int):
        super().__init__()
        from transformers import Qwen3Config, Qwen3ForCausalLM

        config = Qwen3Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
                             attn_implementation="sdpa")
        config.audio_pool_step, config.audio_chunk_length = 2, 1.0
        self.config = config
        self.llm = Qwen3ForCausalLM(config)
        self.vision = nn.Linear(3, 32)
        self.queries = nn.Parameter(torch.randn(QUERIES, 32) * 0.1)
        self.audio = nn.Linear(1, 32)

    @property
    def dtype(self):
        return self.llm.dtype

    def get_input_embeddings(self):
        return self.llm.get_input_embeddings()

    def get_vllm_embedding(self, data):
        embeds = self.llm.model.embed_tokens(data["input_ids"]).clone()
        views = data["pixel_values"][0]
        for (start, end), pixels in zip(data["image_bound"][0].tolist(), views):
            embeds[0, start:end] = self.vision(pixels.mean(dim=(1, 2)).to(embeds.dtype)) + self.queries
        return embeds, []

    def get_omni_embedding(self, data, input_embeddings, chunk_length=-1):
        embeds = input_embeddings.clone()
        for (start, end), wave in zip(data["audio_bounds"][0].tolist(), data["audio_features"]):
            chunks = torch.tensor_split(wave.to(embeds.dtype), end - start)
            embeds[0, start:end] = self.audio(torch.stack([c.mean() for c in chunks])[:, None])
        return embeds


def build_backend():
    tok = tf.qwen2_tokenizer(TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=TEMPLATE)
    model = tf.seeded(lambda: FakeMiniCPMO(tf.padded_vocab(tok)))
    model.llm.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = model.llm.generation_config
    return MiniCPMOBackend(model, FakeMiniCPMOProcessor(tok), "fake-minicpm-o")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which one?\nA. tone\nB. picture"),
            ImageItem(str(media["image_b"])), ImageItem(str(media["image_a"])), AudioItem(str(media["audio"])),
            VideoItem(str(media["video"])), TextItem("Why?")]


def test_loading_is_refused_without_opt_in_and_runs_no_checkpoint_code(tmp_path):
    sentinel = tmp_path / "code_ran"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "minicpmo", "architectures": ["MiniCPMO"],
        "auto_map": {"AutoConfig": "configuration_minicpmo.MiniCPMOConfig",
                     "AutoModel": "modeling_minicpmo.MiniCPMO"}}))
    (tmp_path / "configuration_minicpmo.py").write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n")
    for load in (lambda: load_backend(str(tmp_path)), lambda: Tracer.from_pretrained(tmp_path),
                 lambda: MiniCPMOBackend.from_pretrained(str(tmp_path))):
        with pytest.raises(RemoteCodeRefused, match=r"runs that code .* trust_remote_code=True"):
            load()
    assert not sentinel.exists()


def test_layout_follows_the_processors_bounds(backend, media):
    items = _items(media)
    prepared = backend.prepare(items, SourceConfig())
    lay, ids = prepared.layout, prepared.input_ids[0].numpy()
    data = prepared.extras["data"]
    bounds = data["image_bound"][0].tolist() + data["audio_bounds"][0].tolist()
    in_runs = np.zeros(len(ids), bool)
    for start, end in bounds:
        in_runs[start:end] = True
    assert np.array_equal(in_runs, np.isin(lay.kind, [L.IMAGE, L.AUDIO, L.VIDEO_VISUAL, L.VIDEO_AUDIO]))
    # image_b (56 px wide) has one view, image_a (112 px) a source view and two slices: one tile each
    assert len(lay.positions(L.IMAGE, 2)) == QUERIES and len(lay.positions(L.IMAGE, 3)) == 3 * QUERIES
    assert lay.grids[2] == lay.grids[3] == (1, 1)
    audio = lay.positions(L.AUDIO, 4)
    assert len(audio) == 75  # 3 s at 40 ms: Whisper 50 Hz, pooled by 2
    np.testing.assert_allclose(lay.time_start[audio], 0.04 * np.arange(75))
    # the video as omni units: frame f (an image) then its 0.5 s of the track, times from f / fps
    frames, fps = prepared.media[5]["frames"], prepared.media[5]["fps"]
    vis, track = lay.positions(L.VIDEO_VISUAL, 5), lay.positions(L.VIDEO_AUDIO, 5)
    np.testing.assert_allclose(np.unique(lay.time_start[vis]), np.arange(frames) / fps)
    assert len(track) > 0 and np.all(np.diff(lay.time_start[track]) >= 0) and lay.time_start[track].max() < 4.0
    assert backend.tokenizer.decode(ids.tolist()).count("<unit>") == frames
    tf.check_text_offsets(lay, items)


def test_signals_run_and_equal_an_eager_forward_of_the_language_model(backend, media):
    items = _items(media)[:5]
    tracer = Tracer(backend)
    results = {s: tracer.trace(items, signal=s, generation=tf.GEN) for s in ("attmean", "attraw", "attgrads")}
    generated = [t.token_id for t in results["attmean"].tokens]
    prepared = backend.prepare(items, SourceConfig())
    model, n = backend.model, prepared.length
    data = {**prepared.extras["data"], "input_ids": prepared.input_ids}
    with torch.no_grad():
        embeds, _ = model.get_vllm_embedding(data)
        embeds = model.get_omni_embedding(data, embeds)
    embeds = torch.cat([embeds, model.llm.model.embed_tokens(torch.tensor([generated]))], dim=1)
    model.llm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model.llm(inputs_embeds=embeds, output_attentions=True)
    finally:
        model.llm.set_attn_implementation(CAPTURE_ATTENTION)
    for signal in ("attmean", "attraw"):
        layers = range(len(out.attentions)) if signal == "attmean" else [len(out.attentions) - 1]
        for t in range(len(generated)):
            q = n - 1 + t
            rows = torch.stack([out.attentions[i][0, :, q, : q + 1].mean(0) for i in layers]).mean(0)
            expected = tf._reduce(results[signal], rows.double().numpy(), n)
            np.testing.assert_allclose(results[signal].atom_sum[t], expected, rtol=1e-4, atol=1e-6)
    assert np.isfinite(results["attgrads"].atom_sum).all() and results["attgrads"].atom_sum.sum() > 0
