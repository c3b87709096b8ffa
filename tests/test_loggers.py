"""W&B mode selection: never prompt, never hang."""

import pytest

from vivit.tracking.wandb import has_wandb_credentials, resolve_wandb_mode


@pytest.fixture
def no_netrc(tmp_path):
    return {"NETRC": str(tmp_path / "missing_netrc")}


def test_disabled_wins(no_netrc):
    assert resolve_wandb_mode({**no_netrc, "WANDB_MODE": "disabled", "WANDB_API_KEY": "x" * 40}) == "disabled"


def test_no_credentials_means_offline(no_netrc):
    assert not has_wandb_credentials(no_netrc)
    assert resolve_wandb_mode(no_netrc) == "offline"
    assert resolve_wandb_mode({**no_netrc, "WANDB_MODE": "online"}) == "offline"  # asked online, but no key


def test_api_key_means_online_unless_told_offline(no_netrc):
    env = {**no_netrc, "WANDB_API_KEY": "k" * 40}
    assert resolve_wandb_mode(env) == "online"
    assert resolve_wandb_mode({**env, "WANDB_MODE": "offline"}) == "offline"
    assert resolve_wandb_mode({**env, "WANDB_MODE": "dryrun"}) == "offline"


def test_netrc_login_counts_as_credentials(tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    assert resolve_wandb_mode({"NETRC": str(netrc)}) == "online"
    # a login for another W&B host (self-hosted server) is not a login for this one
    assert resolve_wandb_mode({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.org"}) == "offline"


def test_offline_logger_builds_without_network_or_prompt(tmp_path, monkeypatch, no_netrc, capfd):
    from vivit.tracking.wandb import finish_wandb, wandb_logger

    monkeypatch.setenv("NETRC", no_netrc["NETRC"])
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = wandb_logger(save_dir=str(tmp_path), project="test")
    logger.log_metrics({"x": 1.0})
    assert logger.experiment.settings.mode == "offline"
    finish_wandb()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "the offline run was not written"
    # no "The anonymous setting has no effect" warning: Lightning's anonymous=None is not passed on to wandb.init
    assert "anonymous" not in logger._wandb_init and "anonymous setting" not in capfd.readouterr().err


def test_multirun_jobs_share_one_group_named_after_the_sweep(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict

    from tests.conftest import compose_config
    from vivit.tracking.wandb import multirun_group

    cfg = compose_config("train", [], output_dir=tmp_path)
    assert multirun_group() is None  # a single run has no group
    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(tmp_path / "multiruns" / "2026-11-25_10-00-00")
        cfg.hydra.job.name = "train"
    HydraConfig.instance().set_config(cfg)
    assert multirun_group() == "train-2026-11-25_10-00-00"


def test_wandb_login_host_in_the_settings_file_counts_as_credentials(tmp_path):
    """`wandb login --host URL` writes base_url to wandb's settings file and the key to netrc under that host."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings").write_text("[default]\nbase_url = https://wandb.example.org\n")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine wandb.example.org\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    env = {"NETRC": str(netrc), "WANDB_CONFIG_DIR": str(tmp_path / "config")}
    assert has_wandb_credentials(env) and resolve_wandb_mode(env) == "online"
    # without the settings file the default host is asked for, and the netrc holds no login for it
    assert resolve_wandb_mode({"NETRC": str(netrc), "WANDB_CONFIG_DIR": str(tmp_path / "none")}) == "offline"
