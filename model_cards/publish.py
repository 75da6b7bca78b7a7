#!/usr/bin/env python
"""Push every released CCNN checkpoint to a Hub organisation in one command.

    python model_cards/publish.py --org ccnn-hf [--names mnist2d cifar10] [--private]

Each repo gets what ``from_pretrained`` (also with ``trust_remote_code=True`` where ccnn_hf is not
installed) and ``timm.create_model("hf-hub:...")`` need: the modelling code, ``config.json`` with
timm's fields, ``model.safetensors``, the processor config, plus the model card (rewritten for
that organisation), ``results.json``, the accuracy plot and the kernel picture. An unknown name,
missing weights or an unreachable Hub end the command with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCard

from ccnn_hf.integrations.released import RELEASES, available_releases, released_weights
from ccnn_hf.modeling_ccnn import MODEL_CLASSES


class HubUnreachable(RuntimeError):
    """The Hub refused or could not be reached (offline, no token, no access)."""


def publish(org: str, names: list[str] | None = None, private: bool = False) -> list[str]:
    """Push the named (default: all available) releases to ``org``; returns the repo ids. Every
    name is checked (ValueError, FileNotFoundError) before anything is pushed."""
    api = HfApi()
    folders = {name: released_weights(name) for name in names or available_releases()}
    pushed = []
    for name, folder in folders.items():
        release = RELEASES[name]
        repo_id = f"{org}/{release.repo}"
        modality = json.loads((folder / "config.json").read_text())["modality"]
        model = MODEL_CLASSES[modality].from_pretrained(folder)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)  # code files, config (with timm's fields), weights, processor config
            card = ModelCard((folder / "README.md").read_text(encoding="utf-8"))
            card.text = card.text.replace("local/", f"{org}/")
            for other in RELEASES.values():  # the card names the repo of the org it was built for
                card.text = card.text.replace(f"ccnn-hf/{other.repo}", f"{org}/{other.repo}")
            card.save(Path(tmp) / "README.md")
            for extra in ("results.json", "accuracy_vs_resolution.png", "kernels.png"):
                if (folder / extra).exists():
                    (Path(tmp) / extra).write_bytes((folder / extra).read_bytes())
            _upload(api, repo_id, tmp, private, f"ccnn_hf release: {release.summary}")
        print(f"pushed {name} -> {repo_id}")
        pushed.append(repo_id)
    return pushed


def _upload(api: HfApi, repo_id: str, folder: str, private: bool, message: str) -> None:
    """Create ``repo_id`` if needed and upload ``folder``; a :class:`HubUnreachable` when the Hub says no."""
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message)
    except Exception as error:  # offline, no token, no access: huggingface_hub's and its transport's own types
        text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise HubUnreachable(
            f"could not push {repo_id} to the Hub at {api.endpoint} ({type(error).__name__}: {text}); check "
            "the connection and log in with `hf auth login`"
        ) from error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--org", required=True, help="Hub organisation (or user) to push to")
    parser.add_argument(
        "--names",
        nargs="*",
        choices=list(RELEASES),
        metavar="NAME",
        help=f"releases to push (default: all of {', '.join(RELEASES)})",
    )
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    try:
        publish(args.org, args.names, args.private)
    except (FileNotFoundError, HubUnreachable) as error:
        parser.exit(2, f"publish: error: {error}\n")


if __name__ == "__main__":
    main()
