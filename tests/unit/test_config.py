from pathlib import Path

import pytest

from service.config import Config, ConfigError


def test_defaults_and_env():
    cfg = Config.from_env({})
    assert cfg.redis_url is None
    assert cfg.models_path == Path("var/models")
    assert cfg.effective_redis_url().startswith("unix://")
    cfg = Config.from_env(
        {"REDIS_URL": "redis://h:1/2", "RAPPORT_MAX_BODY_BYTES": "4096", "RAPPORT_DATA_DIR": "/d"}
    )
    assert cfg.effective_redis_url() == "redis://h:1/2"
    assert cfg.max_body_bytes == 4096
    assert cfg.models_path == Path("/d/models")


@pytest.mark.parametrize(
    "env",
    [
        {"RAPPORT_MAX_BODY_BYTES": "lots"},
        {"RAPPORT_MAX_BODY_BYTES": "10"},
        {"RAPPORT_LOG_LEVEL": "chatty"},
        {"RAPPORT_REDIS_TIMEOUT": "0"},
    ],
)
def test_bad_values_name_the_variable(env):
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    assert next(iter(env)) in str(info.value)


def test_unknown_override_rejected():
    with pytest.raises(ConfigError):
        Config.from_env({}, colour="red")
