"""MiniCPM-o 4.5 on its real remote code: the opt-in refusal, the compatibility layer, prompt, layout, signals, CLI.

The real remote code, tokenizer and processor files are read from the shared folder
(``tests/shared_files.MINICPM_O_4_5``; skipped with the reason when absent, failing under CI). The
session builds a reduced random-weight checkpoint from them in a temporary folder: the files copied,
``config.reconstructed.json`` (a reduced test config, see the folder's PROVENANCE.md) as
``config.json``, random weights from the checkpoint's own model class.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from omnitrace_core import (AudioItem, GenerationConfig, ImageItem, SourceConfig, TextItem, TraceResult, Tracer,
                            VideoItem, load_backend, sample_keys)
from omnitrace_core import layout as L
from omnitrace_core.backends.base import RemoteCodeRefused
from omnitrace_core.backends.minicpm_o import MiniCPMOBackend
from omnitrace_core.backends.minicpm_o_compat import (compatible_class, hook_whisper_attention,
                                                      import_check_without_unused)
from omnitrace_core.backends.user_text import special_ids
from omnitrace_core.capture import CAPTURE_ATTENTION
from omnitrace_core.cli import main
from omnitrace_core.media import load_audio, load_image, load_video
from omnitrace_core.verification import Verifier, removal
from tests import media_files
from tests.backends import tiny_families as tf
from tests.shared_files import MINICPM_O_4_5, OFFICIAL_EXAMPLES, require

GEN = GenerationConfig(max_new_tokens=3, min_new_tokens=3)
VIDEO = SourceConfig(video_fps=1.0)  # the model card's omni units: one frame and one second of audio each
QUERIES = 64  # query_num of the reduced config: tokens per view (source image or slice)


# --------------------------------------------------------------------------- fixtures
def build_reduced_checkpoint(folder: Path) -> Path:
    """The real files plus random weights of the checkpoint's own ``MiniCPMO`` on the reduced config."""
    from safetensors.torch import save_file
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    source = require(MINICPM_O_4_5)
    folder.mkdir(parents=True)
    for path in source.iterdir():
        if path.name not in ("PROVENANCE.md", "config.reconstructed.json"):
            shutil.copyfile(path, folder / path.name)  # copies: nothing written here can reach the shared files
    shutil.copyfile(source / "config.reconstructed.json", folder / "config.json")
    with import_check_without_unused():
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model_class = get_class_from_dynamic_module(config.auto_map["AutoModel"], str(folder))
    torch.manual_seed(0)
    model = compatible_class(model_class)(config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors",
              metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="session")
def minicpm_o_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_reduced_checkpoint(tmp_path_factory.mktemp("minicpm_o") / "minicpm_o_4_5_reduced")


@pytest.fixture(scope="module")
def backend(minicpm_o_dir: Path) -> MiniCPMOBackend:
    loaded = load_backend(str(minicpm_o_dir), trust_remote_code=True, device="cpu")
    assert type(loaded) is MiniCPMOBackend
    return loaded


@pytest.fixture(scope="module")
def large_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough for the processor to slice it (a source view plus slices)."""
    return media_files.write_image(tmp_path_factory.mktemp("minicpm_media") / "large.png", 900, 600, seed=3)


def _items(media, large_image):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which picture?"), ImageItem(str(large_image)),
            ImageItem(str(media["image_b"])), AudioItem(str(media["audio"])), TextItem("Why?")]


def _video_items(media):
    return [TextItem("What happens?"), VideoItem(str(media["video"]))]


# --------------------------------------------------------------------------- opt-in
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


# --------------------------------------------------------------------------- compatibility layer
def _imports_by_context(path: Path) -> dict[str, list[str]]:
    """module name -> the enclosing guards of each of its imports: 'def NAME' or the source of an 'if' test."""
    found: dict[str, list[str]] = {}

    def visit(node: ast.AST, guards: tuple[str, ...]) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(" / ".join(guards))
        for child in ast.iter_child_nodes(node):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = (*guards, f"def {node.name}")
            elif isinstance(node, ast.If) and child in node.body:
                inner = (*guards, ast.unparse(node.test))
            else:
                inner = guards
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), ())
    return found


def test_import_check_leaves_out_exactly_the_imports_the_traced_code_never_runs(monkeypatch):
    from transformers.dynamic_module_utils import check_imports

    modeling = require(MINICPM_O_4_5) / "modeling_minicpmo.py"
    where = _imports_by_context(modeling)
    assert set(where["flag_gems"]) == {"os.getenv('USE_FLAGOS') == '1'"}
    # only when get_sys_prompt is given a reference-voice file path (speech output)
    assert where["librosa"] and all(guards.startswith("def get_sys_prompt / ref_audio is not None / "
                                                      "isinstance(ref_audio, str)") for guards in where["librosa"])
    monkeypatch.delenv("USE_FLAGOS", raising=False)
    with pytest.raises(ImportError, match="flag_gems, librosa"):
        check_imports(modeling)  # transformers' own check, as the checkpoint's code meets it
    with import_check_without_unused():
        check_imports(modeling)
    with pytest.raises(ImportError, match="flag_gems, librosa"):
        check_imports(modeling)  # restored on leaving
    monkeypatch.setenv("USE_FLAGOS", "1")  # then the code really imports flag_gems: the check keeps it
    with import_check_without_unused(), pytest.raises(ImportError, match="requires the following packages.*flag_gems"):
        check_imports(modeling)


def test_the_remote_class_does_not_load_as_is_and_the_compatible_one_loads_every_weight(minicpm_o_dir, backend):
    from safetensors.torch import load_file
    from transformers import AutoModel

    with import_check_without_unused(), pytest.raises(AttributeError, match="all_tied_weights_keys"):
        AutoModel.from_pretrained(minicpm_o_dir, trust_remote_code=True)  # MiniCPMO.__init__ has no post_init()
    saved = load_file(minicpm_o_dir / "model.safetensors")
    state = backend.model.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in saved)


def test_the_resamplers_position_table_is_rebuilt_after_loading(backend):
    resampler = backend.model.resampler
    module = sys.modules[type(resampler).__module__]  # the checkpoint's modeling_minicpmo
    expected = torch.from_numpy(module.get_2d_sincos_pos_embed(resampler.embed_dim, resampler.max_size)).float()
    assert resampler.pos_embed.abs().sum() > 0  # transformers 5 alone leaves this non-persistent buffer empty
    assert torch.equal(resampler.pos_embed, expected)


def test_whisper_layers_get_the_three_value_attention_return(backend):
    model = backend.model
    layer_class = type(model.apm.layers[0])
    fresh = layer_class(model.apm.config, layer_idx=0).eval()
    hidden = torch.randn(1, 20, model.apm.config.d_model)
    mask = torch.zeros(1, 1, 20, 20)
    with torch.no_grad(), pytest.raises(ValueError, match="not enough values to unpack"):
        fresh(hidden, mask, layer_head_mask=None)  # the remote layer on transformers 5's WhisperAttention
    handles = hook_whisper_attention(_Holder(fresh))
    with torch.no_grad():
        (out,) = fresh(hidden, mask, layer_head_mask=None)
    assert out.shape == hidden.shape
    for handle in handles:
        handle.remove()


class _Holder(torch.nn.Module):
    """A model-like holder of one encoder layer under ``apm.layers``."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.apm = torch.nn.Module()
        self.apm.layers = torch.nn.ModuleList([layer])


# --------------------------------------------------------------------------- prompt = chat()'s prompt
class _Stop(Exception):
    """Raised in place of generation: chat()'s own generation does not run on transformers 5
    (its ``prepare_inputs_for_generation`` reads ``DynamicCache.seen_tokens``), and is not needed."""


class _RecordingProcessor:
    """The real processor, recording what chat() hands it."""

    def __init__(self, processor) -> None:
        self.processor, self.calls = processor, []

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def __call__(self, *args, **kwargs):
        self.calls.append(args)
        return self.processor(*args, **kwargs)


def _run_chat(backend, monkeypatch, content: list, **kwargs) -> tuple[str, dict]:
    """The prompt text and the model inputs of the model's own chat() on one user message."""
    recorder, seen = _RecordingProcessor(backend.processor), {}

    def generate(**inputs):
        seen.update(inputs)
        raise _Stop

    monkeypatch.setattr(backend.model, "processor", recorder, raising=False)
    monkeypatch.setattr(backend.model, "generate", generate)
    with pytest.raises(_Stop):
        backend.model.chat(msgs=[{"role": "user", "content": content}], max_new_tokens=1, **kwargs)
    (prompts, *_), = recorder.calls
    return prompts[0], seen


def _our_prompt(backend, items, sources=SourceConfig()):
    mb = backend.load_media(items, sources)
    return backend.render_chat(backend.chat_content(items, mb), None), backend.prepare(items, sources)


def _assert_same_inputs(prepared, seen) -> None:
    data = prepared.extras["data"]
    assert prepared.input_ids[0].tolist() == seen["input_ids"][0].tolist()
    for key in ("image_bound", "audio_bounds"):
        assert np.asarray(data[key][0]).tolist() == np.asarray(seen[key][0]).tolist()
    assert all(torch.equal(a, b) for a, b in zip(data["pixel_values"][0], seen["pixel_values"][0]))
    if len(seen["audio_features"]):
        assert torch.equal(data["audio_features"], seen["audio_features"])


def test_prompt_is_chats_prompt_for_text_images_and_audio(backend, media, large_image, monkeypatch):
    items = _items(media, large_image)
    content = [it.text if isinstance(it, TextItem) else load_image(it.source) if isinstance(it, ImageItem)
               else load_audio(it.source, sampling_rate=16000).waveform for it in items]
    chat_prompt, seen = _run_chat(backend, monkeypatch, content)
    ours, prepared = _our_prompt(backend, items)
    assert ours == chat_prompt
    assert ours.startswith("<|im_start|>user\nAnswer briefly.\n\nWhich picture?\n<image>./</image>\n<image>./</image>\n"
                           "<audio>./</audio>\nWhy?<|im_end|>\n")
    # thinking off (chat()'s default) and, with audio, the speech-ready template
    assert ours.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n<|tts_bos|>")
    _assert_same_inputs(prepared, seen)
    text = backend.tokenizer.decode(prepared.input_ids[0].tolist())
    assert "<image_id>0</image_id><image>" in text and "<image_id>1</image_id><image>" in text  # use_image_id: config
    assert backend.processor.image_processor.use_image_id is True


def test_prompt_without_audio_has_no_speech_template(backend, media, monkeypatch):
    items = [TextItem("Describe it."), ImageItem(str(media["image_a"]))]
    chat_prompt, seen = _run_chat(backend, monkeypatch, ["Describe it.", load_image(media["image_a"])])
    ours, prepared = _our_prompt(backend, items)
    assert ours == chat_prompt and ours.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    _assert_same_inputs(prepared, seen)


def test_video_prompt_is_chats_omni_prompt_of_the_model_cards_units(backend, media, monkeypatch):
    items = _video_items(media)
    clip = load_video(media["video"], fps=1.0, with_audio=True, sampling_rate=16000)
    from PIL import Image

    track, rate, units = clip.audio.waveform, 16000, len(clip.frames)
    content = ["What happens?"]
    for i in range(units):  # as the model card's get_video_chunk_content: <unit>, a frame, its second of audio
        content += ["<unit>", Image.fromarray(clip.frames[i]),
                    track[rate * i:rate * (i + 1)] if i + 1 < units else track[rate * i:]]
    chat_prompt, seen = _run_chat(backend, monkeypatch, content, omni_mode=True)
    ours, prepared = _our_prompt(backend, items, VIDEO)
    assert ours == chat_prompt
    assert ours.startswith("<|im_start|>user\nWhat happens?<unit><image>./</image><audio>./</audio><unit>")
    _assert_same_inputs(prepared, seen)


# --------------------------------------------------------------------------- layout
def _runs(bounds) -> np.ndarray:
    return np.concatenate([np.arange(a, b) for a, b in np.asarray(bounds).reshape(-1, 2).tolist()] or [[]]).astype(int)


def test_layout_equals_the_models_image_and_audio_bounds(backend, media, large_image):
    items = _items(media, large_image)
    prepared = backend.prepare(items, SourceConfig())
    lay, data = prepared.layout, prepared.extras["data"]
    assert np.array_equal(np.flatnonzero(lay.kind == L.IMAGE), _runs(data["image_bound"][0]))
    assert np.array_equal(np.flatnonzero(lay.kind == L.AUDIO), _runs(data["audio_bounds"][0]))
    # the large image is a source view plus slices, the small one a single view; one tile each
    assert len(lay.positions(L.IMAGE, 2)) == QUERIES * len(prepared.extras["data"]["pixel_values"][0][:-1])
    assert len(lay.positions(L.IMAGE, 2)) > QUERIES and len(lay.positions(L.IMAGE, 3)) == QUERIES
    assert lay.grids[2] == lay.grids[3] == (1, 1)
    audio = lay.positions(L.AUDIO, 4)
    assert len(audio) == 30  # 3 s at 100 ms: Whisper 50 Hz, pooled by audio_pool_step 5
    np.testing.assert_allclose(lay.time_start[audio], 0.1 * np.arange(30), atol=1e-9)
    tf.check_text_offsets(lay, items)


def test_video_layout_equals_the_models_bounds_unit_by_unit(backend, media):
    items = _video_items(media)
    prepared = backend.prepare(items, VIDEO)
    lay, data, ids = prepared.layout, prepared.extras["data"], prepared.input_ids[0].numpy()
    assert np.array_equal(np.flatnonzero(lay.kind == L.VIDEO_VISUAL), _runs(data["image_bound"][0]))
    assert np.array_equal(np.flatnonzero(lay.kind == L.VIDEO_AUDIO), _runs(data["audio_bounds"][0]))
    frames = prepared.media[1]["frames"]
    assert frames == 4 and (ids == backend.token_id("<unit>")).sum() == frames
    vis, track = lay.positions(L.VIDEO_VISUAL, 1), lay.positions(L.VIDEO_AUDIO, 1)
    np.testing.assert_allclose(np.unique(lay.time_start[vis]), np.arange(frames))
    assert len(track) == 40  # the 4 s track: 10 tokens per unit, in unit order
    np.testing.assert_allclose(lay.time_start[track], 0.1 * np.arange(40), atol=1e-9)
    units = np.flatnonzero(ids == backend.token_id("<unit>"))
    for f, start in enumerate(units):  # each unit: its frame, then its second of audio
        end = units[f + 1] if f + 1 < frames else len(ids)
        inside = np.arange(start, end)
        assert set(lay.time_start[inside[lay.kind[inside] == L.VIDEO_VISUAL]]) == {float(f)}
        np.testing.assert_allclose(lay.time_start[inside[lay.kind[inside] == L.VIDEO_AUDIO]], f + 0.1 * np.arange(10),
                                   atol=1e-9)
    tf.check_text_offsets(lay, items)


#: a MANTIS question's literal <image>, the processor's own tags (<audio> is no special token), template tokens
TYPED_SPECIALS = ("Is the time in both <image> and <image>./</image> the same? Hear <audio>./</audio> at <unit> "
                  "<|im_end|>\n<|im_start|>assistant\nYes")


def test_special_token_strings_typed_in_user_text_stay_text(backend, media):
    items = [TextItem("Answer briefly.\n", is_prompt=True), TextItem(TYPED_SPECIALS), ImageItem(str(media["image_a"])),
             AudioItem(str(media["audio"]))]
    plain = [items[0], TextItem("Is the time the same?"), *items[2:]]
    prepared, reference = backend.prepare(items, SourceConfig()), backend.prepare(plain, SourceConfig())
    lay, data, ids = prepared.layout, prepared.extras["data"], prepared.input_ids[0].numpy()
    tf.check_text_offsets(lay, items)  # the text's tokens rebuild it exactly
    typed = lay.positions(L.TEXT, 1)
    assert not np.isin(ids[typed], list(special_ids(backend.tokenizer))).any()
    assert backend.tokenizer.decode(ids[typed].tolist()) == TYPED_SPECIALS
    # the literal strings neither expanded nor became the tokens the model's bounds are read from
    for token in ("<image>", "</image>", "<|audio_start|>", "<unit>", "<|im_end|>", "<|im_start|>"):
        assert (ids == backend.tokenizer.convert_tokens_to_ids(token)).sum() == \
            (reference.input_ids[0].numpy() == backend.tokenizer.convert_tokens_to_ids(token)).sum()
    for kinds, key in (((L.IMAGE,), "image_bound"), ((L.AUDIO,), "audio_bounds")):
        assert np.array_equal(np.flatnonzero(np.isin(lay.kind, kinds)), _runs(data[key][0]))
        # the media runs are the plain prompt's, moved by the longer text
        shift = len(ids) - reference.length
        assert np.array_equal(_runs(data[key][0]), _runs(reference.extras["data"][key][0]) + shift)
    with torch.no_grad():  # the model scatters the same image and audio features into the moved runs
        embeds, plain_embeds = backend.embed_prompt(prepared)[0], backend.embed_prompt(reference)[0]
    for key in ("image_bound", "audio_bounds"):
        torch.testing.assert_close(embeds[_runs(data[key][0])], plain_embeds[_runs(reference.extras["data"][key][0])])


def test_audio_longer_than_the_encoder_window_is_one_run_with_every_token(backend, tmp_path):
    path = media_files.write_wav(tmp_path / "long.wav", media_files.tone(330, 31.0))
    prepared = backend.prepare([AudioItem(str(path)), TextItem("What is it?")], SourceConfig())
    lay, data = prepared.layout, prepared.extras["data"]
    audio = lay.positions(L.AUDIO, 0)
    assert len(audio) == 310 and np.asarray(data["audio_bounds"][0]).shape == (1, 2)
    assert len(data["audio_feature_lens"][0]) == 2  # the processor cut it into 30 s + 1 s for Whisper
    np.testing.assert_allclose(lay.time_start[audio][[0, 299, 300, 309]], [0.0, 29.9, 30.0, 30.9], atol=1e-9)
    with torch.no_grad():
        assert backend.embed_prompt(prepared).shape[1] == prepared.length


# --------------------------------------------------------------------------- signals
def _eager_forward(backend, prepared, generated, grads=False):
    """The reference: one eager forward of the language model over the prompt's embeddings + generated tokens."""
    llm = backend.model.llm
    with torch.no_grad():
        embeds = backend.embed_prompt(prepared)
        embeds = torch.cat([embeds, llm.get_input_embeddings()(torch.tensor([generated]))], dim=1)
    embeds.requires_grad_(grads)
    llm.set_attn_implementation("eager")
    try:
        with torch.set_grad_enabled(grads):
            out = llm.model(inputs_embeds=embeds, position_ids=torch.arange(embeds.shape[1])[None],
                            output_attentions=True)
            # logits only where the generated tokens were predicted (not L x vocab)
            return out.attentions, llm.lm_head(out.last_hidden_state[0, prepared.length - 1:])
    finally:
        llm.set_attn_implementation(CAPTURE_ATTENTION)


@pytest.mark.parametrize("case", ["images_and_audio", "video"])
def test_signals_rows_sum_to_one_and_equal_a_full_eager_forward(backend, media, case):
    # every view costs the vision tower a full 448 x 448 pass: one small image here, two video units
    items, sources = ([TextItem("Answer briefly.\n", is_prompt=True), ImageItem(str(media["image_b"])),
                       AudioItem(str(media["audio"])), TextItem("Why?")], SourceConfig()) \
        if case == "images_and_audio" else (_video_items(media), SourceConfig(video_fps=0.5))
    backend.model.to(torch.float64)  # float32 gradient noise of a random model would hide a real error
    try:
        tracer = Tracer(backend, sources=sources)
        results = {s: tracer.trace(items, signal=s, generation=GEN) for s in ("attmean", "attraw", "attgrads")}
        generated = [t.token_id for t in results["attmean"].tokens]
        assert all([t.token_id for t in r.tokens] == generated for r in results.values())
        prepared = backend.prepare(items, sources)
        n = prepared.length
        for result in results.values():
            np.testing.assert_allclose(result.atom_sum.sum(1) + result.outside, 1.0, atol=1e-6)
        attentions, _ = _eager_forward(backend, prepared, generated)
        for signal in ("attmean", "attraw"):
            layers = range(len(attentions)) if signal == "attmean" else [len(attentions) - 1]
            for t in range(len(generated)):
                q = n - 1 + t
                rows = torch.stack([attentions[i][0, :, q, : q + 1].mean(0) for i in layers]).mean(0)
                np.testing.assert_allclose(results[signal].atom_sum[t], tf._reduce(results[signal], rows.numpy(), n),
                                           rtol=1e-5, atol=1e-7)
        attentions, logits = _eager_forward(backend, prepared, generated, grads=True)
        attn = attentions[-1]
        for t in range(len(generated)):
            q = n - 1 + t
            logp = torch.log_softmax(logits[t], -1)[generated[t]]
            (grad,) = torch.autograd.grad(logp, attn, retain_graph=t + 1 < len(generated))
            contribution = (attn[0, :, q, : q + 1] * grad[0, :, q, : q + 1]).sum(0).clamp_min(0).detach()
            expected = tf._reduce(results["attgrads"], (contribution / contribution.sum()).numpy(), n)
            np.testing.assert_allclose(results["attgrads"].atom_sum[t], expected, rtol=1e-4, atol=1e-7)
    finally:
        backend.model.to(torch.float32)


# --------------------------------------------------------------------------- the official examples, through the CLI
#: samples that cannot be traced on this model, and why
OFFICIAL_ERRORS = {
    "question_audio.json": {"0:summarization": "MediaError"},  # its audio file is not in the examples
    "question_video.json": {"87:qa": "MediaError"},  # its video file is not in the examples
    "question_visual_text.json": {},
}
#: MANTIS questions write "<image>" in their text, which is MiniCPM-o's image token: traced as text
TYPED_IMAGE_TOKEN = {"262:vqa", "274:vqa"}


@pytest.mark.parametrize("name", sorted(OFFICIAL_ERRORS))
def test_official_examples_run_through_the_cli(minicpm_o_dir, name, tmp_path):
    questions = require(OFFICIAL_EXAMPLES / "examples") / name
    output = tmp_path / "out.jsonl"
    code = main(["trace", "--model", str(minicpm_o_dir), "--trust-remote-code", "--questions", str(questions),
                 "--max-new-tokens", "4", "--output", str(output), "--device", "cpu", "--no-progress",
                 "--video-max-frames", "2"])
    assert code == 0
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["key"] for r in records] == sample_keys(json.loads(questions.read_text(encoding="utf-8")))
    for record in records:
        if record["key"] in OFFICIAL_ERRORS[name]:
            assert record["status"] == "error" and record["error_type"] == OFFICIAL_ERRORS[name][record["key"]]
            continue
        assert record["status"] == "ok", record.get("error")
        result = TraceResult.from_dict(record["result"])
        assert len(result.tokens) >= 1 and result.model_id == str(minicpm_o_dir)
        np.testing.assert_allclose(result.atom_sum.sum(1) + result.outside, 1.0, atol=1e-4)
        if record["key"] in TYPED_IMAGE_TOKEN:
            (question,) = [info for info in result.items if info.modality == "text" and "<image>" in info.text]
            units = [u for u in result.units if u.item == question.index]
            edges = [0] + [x for u in units for x in (u.char_start, u.char_end)] + [len(question.text)]
            gaps = [question.text[a:b] for a, b in zip(edges[::2], edges[1::2])]
            assert all(not gap.strip() for gap in gaps)  # its sentences and the blanks between them rebuild it
            assert "<image>" in question.text[units[0].char_start:units[0].char_end]
            assert result.unit_scores()[0][:, units[0].index].sum() > 0  # its tokens were traced to it


# --------------------------------------------------------------------------- verification
@pytest.fixture(scope="module")
def verified_items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("The kite is red. Which one is red?"),
            ImageItem(str(media["image_b"])), AudioItem(str(media["audio"]))]


@pytest.fixture(scope="module")
def traced(backend, verified_items):
    return Tracer(backend).trace(verified_items, generation=GEN)


def _forced_logp(backend, prepared, generated) -> np.ndarray:
    """Reference: the model's own embedding of the prompt (vision and audio encoders), the generated tokens
    after it, one forward of its language model, no cache."""
    llm = backend.model.llm
    with torch.no_grad():
        tail = llm.get_input_embeddings()(torch.tensor([generated[:-1]]))
        embeds = torch.cat([backend.embed_prompt(prepared), tail], dim=1)
        logits = llm(inputs_embeds=embeds, position_ids=torch.arange(embeds.shape[1])[None]).logits
    logp = torch.log_softmax(logits[0, prepared.length - 1:].double(), -1)
    return logp[torch.arange(len(generated)), torch.tensor(generated)].numpy()


def test_teacher_forcing_reproduces_the_traced_log_probabilities(backend, verified_items, traced):
    generated = [t.token_id for t in traced.tokens]
    verifier = Verifier.for_result(backend, traced, verified_items, mode="knockout")
    np.testing.assert_allclose(verifier.base.logp, [t.logprob for t in traced.tokens], atol=1e-4)
    np.testing.assert_allclose(verifier.base.logp, _forced_logp(backend, verifier.ablator.prepared, generated),
                               atol=1e-4)


@pytest.mark.parametrize("mode", ["input", "knockout"])
def test_verify_measures_every_unit_in_both_modes(backend, verified_items, traced, mode):
    tracer = Tracer(backend)
    verification = tracer.verify(traced, mode=mode, items=verified_items)
    assert verification.units == tuple(range(len(traced.units))) and not verification.stopped
    assert {u.modality for u in traced.units} == {"text", "image", "audio"}
    expected = [sum(t.logprob for t in traced.tokens[s.token_start:s.token_end]) for s in traced.spans]
    np.testing.assert_allclose(verification.logp, expected, atol=1e-4)  # removing nothing: the traced output
    assert np.all(np.abs(verification.effects).max(axis=0) > 1e-6)  # every unit's removal changes the logits
    assert (verification.cost["encodes"] > 0) == (mode == "input")  # only input mode re-encodes media


def test_input_mode_is_the_model_on_the_edited_input(backend, verified_items, traced, tmp_path):
    """Removing the image in input mode = the model on the same prompt with a flat image of its mean colour."""
    from omnitrace_core.verification.ablation import grey_image

    image = next(u for u in traced.units if u.modality == "image")
    verifier = Verifier.for_result(backend, traced, verified_items, mode="input")
    removed = verifier.score([removal([image.index])])[0]
    grey = tmp_path / "grey.png"
    grey_image(load_image(verified_items[image.item].source)).save(grey)
    edited = [ImageItem(str(grey)) if k == image.item else item for k, item in enumerate(verified_items)]
    generated = [t.token_id for t in traced.tokens]
    np.testing.assert_allclose(removed.logp, _forced_logp(backend, backend.prepare(edited, SourceConfig()), generated),
                               atol=1e-4)
    assert not np.allclose(removed.logp, verifier.base.logp, atol=1e-6)


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_knockout_is_the_forward_without_the_units_tokens(backend, verified_items, traced, modality):
    unit = next(u.index for u in traced.units if u.modality == modality)
    verifier = Verifier.for_result(backend, traced, verified_items, mode="knockout")
    knocked = verifier.score([removal([unit])])[0]
    generated = [t.token_id for t in traced.tokens]
    embeds, positions = backend.lm_inputs(verifier.ablator.prepared, generated)
    deleted = verifier.ablator.blocked(removal([unit]))
    keep = torch.as_tensor(np.setdiff1d(np.arange(embeds.shape[1]), deleted))
    rows = backend.lm_forward(embeds[:, keep], positions[..., keep], None,
                              backend.new_cache())[0, traced.prompt_tokens - 1 - len(deleted):]
    logp = torch.log_softmax(backend.lm_logits(rows).double(), -1)[torch.arange(len(generated)),
                                                                    torch.tensor(generated)].numpy()
    np.testing.assert_allclose(knocked.logp, logp, atol=1e-4)
