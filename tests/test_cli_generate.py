"""`vaura generate` and `vaura info` end to end on real media with an installed random-weight model."""

import json

import av
import numpy as np
import pytest
import soundfile as sf

from tests.media_factory import make_random_bytes, make_video
from tests.model_fixtures import install_random_model
from vaura_core.cli import EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE, main


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clips") / "shot.mp4", fps=30, duration=1.5, size=(80, 60))


@pytest.fixture(scope="module")
def model_name(tmp_path_factory):
    import os
    from pathlib import Path

    install_random_model(Path(os.environ["VAURA_HOME"]), "cli-test")
    return "cli-test"


def test_info_json(clip, capsys):
    assert main(["info", str(clip), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["video"]["frame_rate"] == pytest.approx(30.0)
    assert info["duration"] == pytest.approx(1.5, abs=1e-3)


def test_generate_wav_variations_and_json(clip, model_name, tmp_path, capsys):
    out = tmp_path / "fx.wav"
    base = ["generate", str(clip), "-o", str(out), "--model", model_name, "--seed", "7"]
    code = main([*base, "--variations", "2", "--rate", "48000", "--bits", "16", "--json", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["seed"] for t in report["takes"]] == [7, 8]
    paths = [tmp_path / "fx-take1.wav", tmp_path / "fx-take2.wav"]
    assert report["outputs"] == [str(p) for p in paths]
    data = [sf.read(p) for p in paths]
    for samples, rate in data:
        assert rate == 48000 and len(samples) == round(1.5 * 48000)
    assert sf.info(paths[0]).subtype == "PCM_16"
    assert not np.array_equal(data[0][0], data[1][0])
    # the same seed reproduces the first take exactly
    again = tmp_path / "again.wav"
    args = ["generate", str(clip), "-o", str(again), "--model", model_name, "--seed", "7", "--rate", "48000"]
    assert main([*args, "--bits", "16", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(sf.read(again)[0], data[0][0])


def test_generate_mp4_keeps_video_and_length(clip, model_name, tmp_path):
    out = tmp_path / "fx.mp4"
    assert main(["generate", str(clip), "-o", str(out), "--model", model_name, "--seed", "1"]) == 0
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        assert c.streams.audio[0].codec_context.name == "aac"
        n = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    assert n == 45


def test_bad_inputs_give_exit_codes_and_messages(clip, model_name, tmp_path, capsys):
    junk = make_random_bytes(tmp_path / "junk.mp4")
    assert (
        main(["generate", str(junk), "-o", str(tmp_path / "a.wav"), "--model", model_name]) == EXIT_BAD_INPUT
    )
    assert "junk.mp4" in capsys.readouterr().err
    assert (
        main(["generate", str(clip), "-o", str(tmp_path / "a.ogg"), "--model", model_name]) == EXIT_BAD_INPUT
    )
    code = main(["generate", str(clip), "-o", str(tmp_path / "a.wav"), "--model", "no-such-model"])
    assert code == EXIT_MODEL_UNAVAILABLE
    assert "no-such-model" in capsys.readouterr().err
    assert main(["generate", str(clip), "-o", str(tmp_path / "a.wav"), "--top-p", "3"]) == EXIT_BAD_INPUT
    assert main(["generate", str(clip), "-o", str(tmp_path / "a.wav"), "--chains", "65"]) == EXIT_BAD_INPUT
    assert "--chains must be between 1 and 64" in capsys.readouterr().err
    assert main(["generate", str(clip), "-o", str(tmp_path / "a.wav"), "--candidates", "0"]) == EXIT_BAD_INPUT
    assert "--candidates must be between 1 and 8" in capsys.readouterr().err
    assert not (tmp_path / "a.wav").exists()


def test_model_folders_work_wherever_a_model_is_named(clip, model_name, tmp_path, capsys):
    import os
    from pathlib import Path

    from vaura_core.weights.registry import ModelRegistry

    folder = ModelRegistry(Path(os.environ["VAURA_HOME"])).path(model_name)
    by_name, by_folder = tmp_path / "name.wav", tmp_path / "folder.wav"
    assert main(["generate", str(clip), "-o", str(by_name), "--model", model_name, "--seed", "4"]) == 0
    assert main(["generate", str(clip), "-o", str(by_folder), "--model", str(folder), "--seed", "4"]) == 0
    np.testing.assert_array_equal(sf.read(by_name)[0], sf.read(by_folder)[0])
    capsys.readouterr()
    # A path that is no folder, or a name no model could have: a message, not a traceback.
    missing = tmp_path / "no-such" / "model"
    for command in (["generate", str(clip), "-o", str(tmp_path / "b.wav")], ["bench", "--tokens", "4"]):
        code = main([*command, "--model", str(missing)])
        assert code in (EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE)
        assert f"{missing}: no such model folder" in capsys.readouterr().err
    bad_name = ["generate", str(clip), "-o", str(tmp_path / "b.wav"), "--model", "bad name!"]
    assert main(bad_name) == EXIT_BAD_INPUT
    assert "not a valid model name" in capsys.readouterr().err
    assert not (tmp_path / "b.wav").exists()


def test_the_commands_start_without_torch() -> None:
    """Parsing and help stay fast: options such as `--candidates` must not pull torch in at start."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vaura_core.cli import main\n"
        "try:\n    main(['generate', '--help'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
