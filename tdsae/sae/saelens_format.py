"""Save and load SAEs as SAELens v6 folders: cfg.json + sae_weights.safetensors.

    save_sae(sae, "artifacts/sae/layer2")          # sae_lens.SAE.load_from_disk reads it too
    sae = load_sae("artifacts/sae/layer2", expected_d_in=128)

Layout (ECOSYSTEM.md section 2): cfg.json holds SAELens's SAEConfig.to_dict() keys plus
"architecture"; the safetensors file holds W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in]
and b_dec [d_in]. A folder is written under a temporary name and swapped into place, so the final
name never holds half a folder.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from packaging.version import InvalidVersion, Version
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tdsae.sae.model import DTYPES, NORMALIZATIONS, SAE, SAEConfig
from tdsae.validation import ARCHITECTURES

CFG_FILENAME = "cfg.json"  # sae_lens.constants.SAE_CFG_FILENAME
WEIGHTS_FILENAME = "sae_weights.safetensors"  # sae_lens.constants.SAE_WEIGHTS_FILENAME
REQUIRED_KEYS = ("d_in", "d_sae", "dtype", "architecture")  # what SAELens's loader needs
FIRST_V6 = "6.0.0"


def _saelens_version() -> str:
    """The installed SAELens version if >= 6, else 6.0.0 (an older number triggers SAELens's pre-6 conversion)."""
    try:
        version = metadata.version("sae-lens")
        return version if Version(version) >= Version(FIRST_V6) else FIRST_V6
    except (metadata.PackageNotFoundError, InvalidVersion):
        return FIRST_V6


def _config_dict(sae: SAE) -> dict:
    """cfg.json contents, keys in SAELens's SAEConfig.to_dict() order."""
    cfg = sae.cfg
    dtype = next(name for name, value in DTYPES.items() if value == sae.dtype)
    version = _saelens_version()
    result = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": dtype, "device": "cpu",
              "apply_b_dec_to_input": cfg.apply_b_dec_to_input, "normalize_activations": cfg.normalize_activations,
              "reshape_activations": "none",
              "metadata": {"sae_lens_version": version, "sae_lens_training_version": version,
                           "model_name": cfg.model_name, "hook_name": cfg.hook_name, "hf_hook_name": cfg.hf_hook_name,
                           "written_by": "tdsae"}}
    if cfg.architecture == "topk":
        result.update(k=cfg.k, rescale_acts_by_decoder_norm=cfg.rescale_acts_by_decoder_norm)
    result["architecture"] = cfg.architecture
    return result


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM):  # file system or kernel without the flag
        return False
    raise OSError(code, os.strerror(code), str(b))


def save_sae(sae: SAE, folder) -> Path:
    """Write sae as an SAELens v6 folder at folder, replacing an existing one in a single swap. Returns the path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not an SAE folder; refusing to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the saved SAE should read like any folder
        tensors = {name: getattr(sae, name).detach().cpu().contiguous()
                   for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
        save_file(tensors, tmp / WEIGHTS_FILENAME)
        (tmp / CFG_FILENAME).write_text(json.dumps(_config_dict(sae), indent=2))
        if not folder.exists():
            os.replace(tmp, folder)
        elif _exchange(tmp, folder):
            pass  # tmp now holds the old folder, removed below
        else:
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def _read_config(folder: Path) -> dict:
    """cfg.json as a dict, with pre-6 SAELens defaults applied, or a ValueError naming the file and field."""
    path = folder / CFG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} is not an SAELens SAE folder")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(cfg).__name__}")
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    version = cfg.get("sae_lens_version") or meta.get("sae_lens_version")
    try:
        pre_v6 = not version or Version(str(version)) < Version("6.0.0rc0")
    except InvalidVersion as error:
        raise ValueError(f"{path}: field 'metadata.sae_lens_version' is {version!r}, not a version") from error
    if pre_v6:
        # SAELens's handle_pre_6_0_config: hook_point -> hook_name, "standard" unless a topk activation
        cfg = {**cfg, "hook_name": cfg.get("hook_name", cfg.get("hook_point"))}
        if cfg.get("activation_fn_str", cfg.get("activation_fn")) == "topk":
            cfg.setdefault("architecture", "topk")
            cfg.setdefault("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
        cfg.setdefault("architecture", "standard")
        if isinstance(cfg.get("normalize_activations"), bool):
            cfg["normalize_activations"] = "expected_average_only_in" if cfg["normalize_activations"] else "none"
    for key in REQUIRED_KEYS:
        if key not in cfg:
            raise ValueError(f"{path}: required field {key!r} is missing")
    if cfg["architecture"] not in ARCHITECTURES:
        raise ValueError(f"{path}: field 'architecture' is {cfg['architecture']!r}; tdsae loads "
                         f"{', '.join(ARCHITECTURES)}")
    if cfg["architecture"] == "topk" and cfg.get("k") is None:
        raise ValueError(f"{path}: required field 'k' is missing for a topk SAE")
    if cfg.get("reshape_activations", "none") != "none":
        raise ValueError(f"{path}: field 'reshape_activations' is {cfg['reshape_activations']!r}; "
                         f"only 'none' is supported")
    if cfg.get("normalize_activations", "none") not in NORMALIZATIONS:
        raise ValueError(f"{path}: field 'normalize_activations' is {cfg['normalize_activations']!r}; "
                         f"supported: {', '.join(NORMALIZATIONS)}")
    return cfg


def load_sae(folder, device: str = "cpu", expected_d_in: int | None = None) -> SAE:
    """Load an SAELens v6 folder (written by save_sae or by SAELens) as an SAE on device.

    expected_d_in: the width of the activations it will read; a different d_in raises ValueError
    naming the folder and both widths. Every malformed file raises an error naming file and field.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"SAE folder {folder} does not exist")
    cfg = _read_config(folder)
    path = folder / CFG_FILENAME
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    try:
        config = SAEConfig(d_in=cfg["d_in"], d_sae=cfg["d_sae"], architecture=cfg["architecture"], k=cfg.get("k"),
                           rescale_acts_by_decoder_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)),
                           apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
                           normalize_activations=cfg.get("normalize_activations", "none"),
                           dtype=str(cfg["dtype"]).removeprefix("torch."),
                           hook_name=meta.get("hook_name", cfg.get("hook_name")),
                           hf_hook_name=meta.get("hf_hook_name", cfg.get("hf_hook_name")),
                           model_name=meta.get("model_name", cfg.get("model_name")))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    if expected_d_in is not None and config.d_in != expected_d_in:
        raise ValueError(f"SAE {folder} reads d_in={config.d_in}, but the activations it is applied to have width "
                         f"{expected_d_in}")
    return _load_weights(folder, config).to(device)


def _load_weights(folder: Path, config: SAEConfig) -> SAE:
    """An SAE with config and the tensors of folder's safetensors file, shape-checked."""
    path = folder / WEIGHTS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} holds no SAE weights")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
    scaling = tensors.pop("scaling_factor", None)  # SAELens drops an all-ones finetuning scale the same way
    if scaling is not None and not torch.allclose(scaling.float(), torch.ones_like(scaling.float())):
        raise ValueError(f"{path}: tensor 'scaling_factor' is not all ones (finetuning scales are not supported)")
    d_in, d_sae = config.d_in, config.d_sae
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in expected.items():
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, but d_in={d_in} and "
                             f"d_sae={d_sae} in {CFG_FILENAME} need {shape}")
        bad = int((~torch.isfinite(tensors[name].float())).sum())
        if bad:
            raise ValueError(f"{path}: tensor {name!r} holds {bad} NaN or infinite values; a trained SAE's weights "
                             "are finite (did training diverge, or is the file damaged?)")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ValueError(f"{path}: unexpected tensors {unexpected} for a {config.architecture!r} SAE")
    sae = SAE(config, seed=None)
    sae.load_state_dict({name: tensor.to(DTYPES[config.dtype]) for name, tensor in tensors.items()})
    return sae
