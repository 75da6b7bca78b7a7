"""The local Hub server (tests/hub_server.py) as huggingface_hub, transformers and timm see it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

README = "---\nlicense: mit\ntags:\n- test\n---\n# A test repo\n"


@pytest.fixture(scope="module")
def pushed(local_hub: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A repo holding a nested folder and a README, pushed once for the tests below."""
    folder = tmp_path_factory.mktemp("upload")
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "deeper" / "notes.txt").write_text("hello")
    api = HfApi()
    api.create_repo("org/files")
    first = api.upload_folder(repo_id="org/files", folder_path=folder, commit_message="add folder")
    second = api.upload_file(repo_id="org/files", path_or_fileobj=README.encode(), path_in_repo="README.md")
    return {"repo_id": "org/files", "first": first.oid, "second": second.oid, "folder": str(folder)}


def test_whoami(local_hub: str) -> None:
    assert HfApi().whoami()["name"] == "test-user"
    assert huggingface_hub.constants.ENDPOINT == local_hub


def test_create_repo_and_exist_ok(local_hub: str) -> None:
    url = huggingface_hub.create_repo("org/created")  # module-level function: the import-time HfApi instance
    assert url.repo_id == "org/created" and url.startswith(local_hub)
    with pytest.raises(HfHubHTTPError) as err:
        HfApi().create_repo("org/created")
    assert err.value.response.status_code == 409
    assert HfApi().create_repo("org/created", exist_ok=True).repo_id == "org/created"
    assert HfApi().create_repo("mine").repo_id == "test-user/mine"  # no namespace: the user's
    dataset = HfApi().create_repo("org/created", repo_type="dataset")  # same name, other type
    assert dataset.repo_type == "dataset" and HfApi().repo_exists("org/created", repo_type="dataset")
    HfApi().delete_repo("org/created")
    assert not HfApi().repo_exists("org/created")


def test_listing_and_info(pushed: dict[str, str]) -> None:
    api, repo_id = HfApi(), pushed["repo_id"]
    expected = {".gitattributes", "README.md", "weights.bin", "sub/config.json", "sub/deeper/notes.txt"}
    assert set(api.list_repo_files(repo_id)) == expected
    assert api.file_exists(repo_id, "sub/deeper/notes.txt")
    assert not api.file_exists(repo_id, "nope.txt")
    assert not api.file_exists("org/missing", "README.md")
    info = api.model_info(repo_id)
    assert info.sha == pushed["second"]
    assert {s.rfilename for s in info.siblings} == expected
    assert api.model_info(repo_id, revision=pushed["first"]).sha == pushed["first"]

    top = {(e.path, type(e).__name__) for e in api.list_repo_tree(repo_id)}
    assert ("sub", "RepoFolder") in top and ("sub/config.json", "RepoFile") not in top
    nested = {e.path for e in api.list_repo_tree(repo_id, path_in_repo="sub", recursive=True)}
    assert nested == {"sub/config.json", "sub/deeper", "sub/deeper/notes.txt"}
    weights = next(e for e in api.list_repo_tree(repo_id, expand=True) if e.path == "weights.bin")
    assert weights.size == 1024 and weights.last_commit.oid == pushed["first"]
    paths = api.get_paths_info(repo_id, ["README.md", "sub", "missing"])
    assert [p.path for p in paths] == ["README.md", "sub"]
    refs = api.list_repo_refs(repo_id)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", pushed["second"])]
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits[:2]] == [pushed["second"], pushed["first"]]
    assert commits[1].title == "add folder"


def test_downloads(pushed: dict[str, str], tmp_path: Path) -> None:
    repo_id, folder = pushed["repo_id"], Path(pushed["folder"])
    by_branch = huggingface_hub.hf_hub_download(repo_id, "sub/config.json", cache_dir=tmp_path)
    assert Path(by_branch).read_text() == '{"a": 1}'
    by_sha = huggingface_hub.hf_hub_download(repo_id, "README.md", revision=pushed["second"], cache_dir=tmp_path)
    assert Path(by_sha).read_text() == README
    with pytest.raises(EntryNotFoundError):  # README.md came in the second commit
        huggingface_hub.hf_hub_download(repo_id, "README.md", revision=pushed["first"], cache_dir=tmp_path)
    snapshot = Path(huggingface_hub.snapshot_download(repo_id, cache_dir=tmp_path))
    assert (snapshot / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert (snapshot / "sub" / "deeper" / "notes.txt").read_text() == "hello"
    assert huggingface_hub.ModelCard.load(repo_id).data.license == "mit"


def test_dataset_repo(local_hub: str, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo("org/data", repo_type="dataset")
    api.upload_file(repo_id="org/data", repo_type="dataset", path_or_fileobj=b"x,y\n1,2\n", path_in_repo="d.csv")
    path = huggingface_hub.hf_hub_download("org/data", "d.csv", repo_type="dataset", cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"x,y\n1,2\n"
    assert api.dataset_info("org/data").siblings[-1].rfilename == "d.csv"
    with pytest.raises(RepositoryNotFoundError):  # same name, wrong type
        huggingface_hub.hf_hub_download("org/data", "d.csv", cache_dir=tmp_path)


def test_subprocess_uses_server(pushed: dict[str, str]) -> None:
    code = "from huggingface_hub import HfApi; print(HfApi().model_info('org/files').sha)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == pushed["second"]


def test_errors(pushed: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        huggingface_hub.hf_hub_download(pushed["repo_id"], "missing.json", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        huggingface_hub.hf_hub_download("org/missing", "config.json", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.hf_hub_download(pushed["repo_id"], "README.md", revision="nope", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("org/missing")


def test_delete_and_branch(local_hub: str) -> None:
    api = HfApi()
    api.create_repo("org/edits")
    api.upload_file(repo_id="org/edits", path_or_fileobj=b"1", path_in_repo="a/one.txt")
    api.upload_file(repo_id="org/edits", path_or_fileobj=b"2", path_in_repo="a/two.txt")
    api.create_branch("org/edits", branch="dev")
    api.delete_file("a/one.txt", repo_id="org/edits")
    assert api.list_repo_files("org/edits") == [".gitattributes", "a/two.txt"]
    assert "a/one.txt" in api.list_repo_files("org/edits", revision="dev")
    api.delete_folder("a", repo_id="org/edits", revision="dev")
    assert api.list_repo_files("org/edits", revision="dev") == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("a/one.txt", repo_id="org/edits")


def test_transformers_round_trip(local_hub: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1], num_labels=3
    )
    model = transformers.ResNetForImageClassification(config).eval()
    model.push_to_hub("org/tiny")
    assert HfApi().file_exists("org/tiny", "model.safetensors")
    loaded = transformers.ResNetForImageClassification.from_pretrained("org/tiny").eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, loaded(pixels).logits)


def test_timm_round_trip(local_hub: str) -> None:
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=3).eval()
    timm.models.push_to_hf_hub(model, "org/tiny-timm", safe_serialization=True)
    loaded = timm.create_model("hf-hub:org/tiny-timm", pretrained=True).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
