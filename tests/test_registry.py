"""Model registry and `vaura models`: import, list, load, remove, catalog downloads, offline mode."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.model_fixtures import install_random_model
from tests.official_layout import write_lightning_ckpt
from tests.test_download import COMMIT, REPO, LocalServer, add_hub_file
from vaura_core.cli import EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE, EXIT_OK, main
from vaura_core.errors import ModelUnavailableError, VauraError
from vaura_core.model.config import preset
from vaura_core.weights import catalog
from vaura_core.weights.catalog import CatalogEntry, HttpFile, HubFile
from vaura_core.weights.registry import (
    DEFAULT_MODEL,
    ModelRegistry,
    chosen_models_root,
    default_models_root,
    name_from_path,
    preferences_path,
    save_models_root,
    user_data_dir,
)
from vaura_core.weights.store import load_state


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty models root for the registry and the CLI."""
    root = tmp_path / "vaura-home"
    monkeypatch.setenv("VAURA_HOME", str(root))
    monkeypatch.delenv("VAURA_OFFLINE", raising=False)
    return root


def no_builtins(tmp_path: Path) -> Path:
    """An empty built-in folder, so tests do not depend on what resources/ ships."""
    folder = tmp_path / "builtin"
    folder.mkdir(exist_ok=True)
    return folder


def assert_same_weights(got: dict[str, torch.Tensor], reference: torch.nn.Module) -> None:
    want = reference.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        # The release stores the codec in float16, so its weights come back rounded.
        tol = {"rtol": 5e-3, "atol": 1e-3} if key.startswith("audio_encoder.") else {"rtol": 0, "atol": 0}
        torch.testing.assert_close(got[key].float(), value.float(), msg=key, **tol)


# --- paths -----------------------------------------------------------------------------------------


def test_user_data_dir_per_platform():
    env = {"HOME": "/home/ada"}
    assert user_data_dir("linux", env) == Path("/home/ada/.local/share/vaura-studio")
    assert user_data_dir("linux", {**env, "XDG_DATA_HOME": "/data"}) == Path("/data/vaura-studio")
    assert user_data_dir("linux", {**env, "XDG_DATA_HOME": "relative"}) == Path(
        "/home/ada/.local/share/vaura-studio"
    )
    assert user_data_dir("darwin", env) == Path("/home/ada/Library/Application Support/VAURA Studio")
    assert user_data_dir("win32", {**env, "LOCALAPPDATA": "/c/Users/ada/AppData/Local"}) == Path(
        "/c/Users/ada/AppData/Local/VAURA Studio"
    )
    assert default_models_root({**env, "VAURA_HOME": "/models"}) == Path("/models")
    assert default_models_root(env) == user_data_dir(env=env) / "models"


def test_the_chosen_models_folder_is_shared_and_env_wins(tmp_path: Path):
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    assert chosen_models_root(env) is None
    save_models_root(tmp_path / "big-disk" / "models", env)
    assert chosen_models_root(env) == tmp_path / "big-disk" / "models"
    assert default_models_root(env) == tmp_path / "big-disk" / "models"  # the CLI follows the app
    assert default_models_root({**env, "VAURA_HOME": "/models"}) == Path("/models")
    save_models_root(None, env)
    assert default_models_root(env) == user_data_dir(env=env) / "models"
    preferences_path(env).write_text("{ not json", encoding="utf-8")  # damaged: the default, no crash
    assert default_models_root(env) == user_data_dir(env=env) / "models"
    save_models_root(tmp_path / "again", env)  # and a damaged file is replaced
    assert chosen_models_root(env) == tmp_path / "again"


def test_cli_lists_models_in_the_folder_chosen_in_the_app(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VAURA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    chosen = tmp_path / "chosen"
    install_random_model(chosen, "from-the-app")
    save_models_root(chosen)  # what the model manager's Change… does
    assert main(["models", "list", "--json"]) == EXIT_OK
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listed["from-the-app"]["installed"]


def test_name_from_path():
    assert name_from_path(Path("/x/24-08-01T08-34-26.tar.gz")) == "24-08-01T08-34-26"
    assert name_from_path(Path("epoch=3-step=10.ckpt")) == "epoch-3-step-10"
    assert name_from_path(Path("My Model.safetensors")) == "My-Model"


# --- registry without weights ----------------------------------------------------------------------


def test_missing_builtin_is_listed_and_errors_on_use(home, tmp_path):
    registry = ModelRegistry(builtin_root=no_builtins(tmp_path))
    assert registry.root == home
    tiny = next(m for m in registry.list() if m.name == DEFAULT_MODEL)
    assert tiny.builtin and not tiny.installed
    with pytest.raises(ModelUnavailableError, match="built-in model 'vaura-tiny' is missing"):
        registry.path(DEFAULT_MODEL)
    with pytest.raises(VauraError, match="cannot be removed"):
        registry.remove(DEFAULT_MODEL)


def test_missing_model_error_says_what_to_run(home, tmp_path):
    registry = ModelRegistry(builtin_root=no_builtins(tmp_path))
    message = (
        "model 'vaura' is not installed; run `vaura models download vaura` or `vaura models import PATH`"
    )
    with pytest.raises(ModelUnavailableError) as err:
        registry.path("vaura")
    assert str(err.value) == message
    with pytest.raises(ModelUnavailableError, match="not in the download catalog"):
        registry.path("nonesuch")
    with pytest.raises(VauraError, match="not a valid model name"):
        registry.path("../etc")


def test_cli_missing_model_exit_codes(home, capsys):
    assert main(["models", "remove", "vaura"]) == EXIT_MODEL_UNAVAILABLE
    assert "not installed" in capsys.readouterr().err
    assert main(["models", "download", "nonesuch"]) == EXIT_MODEL_UNAVAILABLE
    assert "not in the download catalog" in capsys.readouterr().err
    assert main(["models", "import", str(home / "nope.ckpt")]) == EXIT_BAD_INPUT
    assert "no such file" in capsys.readouterr().err


def test_offline_download_fails_without_any_request(home, tmp_path, server, monkeypatch):
    url = server.add("/release.tar.gz", b"never fetched")
    entry = CatalogEntry("remote", "test", files=(HttpFile(url=url, filename="release.tar.gz"),))
    registry = ModelRegistry(catalog={"remote": entry}, builtin_root=no_builtins(tmp_path))
    with pytest.raises(ModelUnavailableError, match="offline mode is on"):
        registry.download("remote", offline=True)
    monkeypatch.setenv("VAURA_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="offline mode is on"):
        registry.download("remote")
    assert server.requests == []


# --- import, list, load, remove --------------------------------------------------------------------


def test_import_list_load_remove(home, tmp_path, release_model, capsys):
    ckpt = tmp_path / "epoch=1-step=2-val_loss=3.000.ckpt"
    write_lightning_ckpt(release_model, ckpt)
    registry = ModelRegistry(builtin_root=no_builtins(tmp_path))
    info = registry.import_path([ckpt], name="mine", config_hint="test")
    assert info.installed and not info.builtin and info.path == home / "mine"
    assert info.size_bytes and info.size_bytes > 0 and "imported from" in info.source
    assert [m.name for m in registry.list() if m.installed] == ["mine"]

    model = registry.load("mine", "cpu", torch.float32)
    assert model.cfg == preset("test")
    assert_same_weights(model.state_dict(), release_model)

    with pytest.raises(VauraError, match="already exists"):
        registry.import_path([ckpt], name="mine", config_hint="test")
    with pytest.raises(VauraError, match="built-in"):
        registry.import_path([ckpt], name=DEFAULT_MODEL, config_hint="test")

    assert main(["models", "list", "--json"]) == EXIT_OK
    listing = json.loads(capsys.readouterr().out)
    assert listing["root"] == str(home)
    mine = next(m for m in listing["models"] if m["name"] == "mine")
    assert mine["installed"] and mine["path"] == str(home / "mine") and mine["size_bytes"] > 0

    assert main(["models", "remove", "mine"]) == EXIT_OK
    assert not (home / "mine").exists()
    assert not any(m.installed for m in registry.list() if m.name == "mine")
    with pytest.raises(ModelUnavailableError, match="not installed"):
        registry.load("mine")


def test_cli_import_derives_the_name(home, tmp_path, release_model, capsys):
    ckpt = tmp_path / "foley-v2.ckpt"
    write_lightning_ckpt(release_model, ckpt)
    assert main(["models", "import", str(ckpt)]) == EXIT_BAD_INPUT  # sizes unknown without a preset
    assert "config hint" in capsys.readouterr().err
    assert main(["models", "import", str(ckpt), "--preset", "test"]) == EXIT_OK
    assert "imported foley-v2" in capsys.readouterr().out
    assert main(["models", "import", str(ckpt), "--preset", "test"]) == EXIT_BAD_INPUT
    assert "--force" in capsys.readouterr().err
    assert main(["models", "import", str(ckpt), "--preset", "test", "--force"]) == EXIT_OK


# --- catalog downloads -----------------------------------------------------------------------------


def test_catalog_tarball_download_imports_end_to_end(
    home, tmp_path, server, release_tarball, release_model, monkeypatch, capsys, caplog
):
    url = server.add("/v-aura_public/24-08-01T08-34-26.tar.gz", release_tarball)
    entry = catalog.CATALOG["vaura"]
    local = replace(entry, files=(replace(entry.files[0], url=url),), config_hint="test")
    monkeypatch.setitem(catalog.CATALOG, "vaura", local)

    with caplog.at_level(logging.WARNING, logger="vaura_core.weights.registry"):
        assert main(["models", "download", "vaura"]) == EXIT_OK
    out = capsys.readouterr()
    assert "installed vaura" in out.out
    assert "100%" in out.err  # the tqdm bar went to stderr
    assert "converting vaura" in out.err
    digest = hashlib.sha256(release_tarball).hexdigest()
    assert digest in caplog.text and "no sha256 is published" in caplog.text

    manifest = json.loads((home / "vaura" / "manifest.json").read_text())
    record = manifest["source"]["files"][0]
    assert record["sha256"] == digest and record["sha256_verified"] is False and record["url"] == url
    assert not (home / ".downloads" / "vaura").exists()  # the tarball is deleted after the import
    assert_same_weights(load_state(ModelRegistry().path("vaura"))[1], release_model)

    # installed: a second download is a no-op, even offline
    server.requests.clear()
    assert main(["models", "download", "vaura", "--offline"]) == EXIT_OK
    assert server.requests == []


def test_kept_tarball_allows_an_offline_reinstall(home, tmp_path, server, release_tarball):
    url = server.add("/r.tar.gz", release_tarball)
    digest = hashlib.sha256(release_tarball).hexdigest()
    entry = CatalogEntry(
        "rel", "test release", files=(HttpFile(url=url, filename="r.tar.gz", sha256=digest),),
        config_hint="test",
    )  # fmt: skip
    registry = ModelRegistry(catalog={"rel": entry}, builtin_root=no_builtins(tmp_path))
    info = registry.download("rel", keep=True)
    assert info.installed and (home / ".downloads" / "rel" / "r.tar.gz").is_file()

    (home / "rel").rename(home / ".gone")  # the model folder is lost, the kept tarball is not
    server.requests.clear()
    assert registry.download("rel", offline=True).installed
    assert server.requests == []

    registry.remove("rel")  # removing also drops the kept files, so an offline install fails now
    assert not (home / "rel").exists() and not (home / ".downloads" / "rel").exists()
    with pytest.raises(ModelUnavailableError, match="offline"):
        registry.download("rel", offline=True)
    assert server.requests == []


def test_hub_catalog_entry_downloads_verifies_and_works_offline(home, tmp_path, server, release_model):
    ckpt = tmp_path / "hub.ckpt"
    write_lightning_ckpt(release_model, ckpt)
    data = ckpt.read_bytes()
    add_hub_file(server, "hub.ckpt", data)
    hub_file = HubFile(
        repo_id=REPO, filename="hub.ckpt", revision=COMMIT, sha256=hashlib.sha256(data).hexdigest(),
        endpoint=server.base,
    )  # fmt: skip
    entry = CatalogEntry("hubbed", "from the hub", files=(hub_file,), config_hint="test")
    registry = ModelRegistry(catalog={"hubbed": entry}, builtin_root=no_builtins(tmp_path))

    with pytest.raises(ModelUnavailableError, match="offline"):
        registry.download("hubbed", offline=True)
    assert server.requests == []

    progress: list[int] = []
    info = registry.download("hubbed", progress=lambda done, total: progress.append(done), keep=True)
    assert info.installed and progress[-1] == len(data)
    assert_same_weights(load_state(info.path)[1], release_model)
    manifest = json.loads((home / "hubbed" / "manifest.json").read_text())
    assert manifest["source"]["files"][0]["revision"] == COMMIT

    # the kept Hub file lets an offline re-install succeed without a request
    (home / "hubbed").rename(home / ".gone")
    server.requests.clear()
    assert registry.download("hubbed", offline=True).installed
    assert server.requests == []

    bad = replace(entry, files=(replace(hub_file, sha256="e" * 64),))
    other = ModelRegistry(
        catalog={"hubbed2": replace(bad, name="hubbed2")}, builtin_root=no_builtins(tmp_path)
    )
    with pytest.raises(ModelUnavailableError, match="does not match"):
        other.download("hubbed2")
    assert not (home / "hubbed2").exists()
