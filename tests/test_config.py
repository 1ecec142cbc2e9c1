"""load_settings: defaults, environment overrides, and errors that name the variable."""

from __future__ import annotations

import pytest

from zapa_bridge.config import Settings, load_settings
from zapa_bridge.errors import ConfigError
from zapa_bridge.outbound.pacing import PacingRules
from zapa_bridge.outbound.rate_spec import RateLimit

DAY = 24 * 3600
API_KEY = "sk-very-secret-7f3a"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with none of the variables the settings read (the suite sets some)."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name.upper(), raising=False)
    return monkeypatch


def config_error(env: pytest.MonkeyPatch, **variables: str) -> ConfigError:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return caught.value


def test_every_setting_is_read_from_an_upper_case_variable():
    aliases = [field.alias for field in Settings.model_fields.values()]

    assert [alias for alias in aliases if not alias or alias != alias.upper()] == []


def test_defaults_when_the_environment_is_empty(env):
    settings = load_settings()

    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.zapw_base_url == "http://127.0.0.1:3000"
    assert settings.zapw_api_key is None
    assert settings.default_session is None
    assert settings.status_retention == 7 * DAY
    assert settings.hold_validity == DAY
    assert settings.environment == "production"


def test_default_timeouts_and_retries_are_consistent(env):
    settings = load_settings()

    assert settings.zapw_timeout == 15.0
    assert settings.max_retries == 8
    assert settings.visibility_timeout == 60
    # One attempt must end inside the visibility timeout; retries wait in the due set.
    assert settings.zapw_connect_timeout + settings.zapw_timeout + 4 <= settings.visibility_timeout


def test_environment_overrides_defaults(env):
    env.setenv("REDIS_URL", "redis://cache.internal:6380/2")
    env.setenv("ZAPW_URL", "http://zapw.internal:3100/")
    env.setenv("ZAPW_API_KEY", API_KEY)
    env.setenv("ZAPA_MAX_RETRIES", "3")
    env.setenv("ZAPA_STATUS_RETENTION", "3600")
    env.setenv("ZAPA_HOLD_VALIDITY", "600")
    env.setenv("ZAPA_DEFAULT_SESSION", "main")
    env.setenv("ZAPA_ENV", "development")

    settings = load_settings()

    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert settings.zapw_base_url == "http://zapw.internal:3100"
    assert settings.zapw_api_key.get_secret_value() == API_KEY
    assert settings.max_retries == 3
    assert settings.status_retention == 3600
    assert settings.hold_validity == 600
    assert settings.default_session == "main"
    assert settings.environment == "development"


def test_rediss_and_unix_redis_urls_are_accepted(env):
    assert load_settings(REDIS_URL="rediss://r:6380/0").redis_url == "rediss://r:6380/0"
    assert load_settings(REDIS_URL="unix:///tmp/r.sock").redis_url == "unix:///tmp/r.sock"


def test_empty_api_key_and_default_session_mean_unset(env):
    env.setenv("ZAPW_API_KEY", "")
    env.setenv("ZAPA_DEFAULT_SESSION", "")

    settings = load_settings()

    assert settings.zapw_api_key is None
    assert settings.default_session is None


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("ZAPA_SESSIONS", "s1, .., s2", "session '..' must not be '.' or '..'"),
    ("ZAPA_SESSIONS", "s1,team/a", "session 'team/a' must not contain '/'"),
    ("ZAPA_DEFAULT_SESSION", ".", "must not be '.' or '..'"),
    ("ZAPA_DEFAULT_SESSION", "a/b", "must not contain '/'"),
])
def test_a_session_id_no_url_can_carry_names_its_variable(env, variable, value, why):
    error = config_error(env, **{variable: value})

    assert list(error.problems) == [variable]
    assert error.problems[variable].startswith(why)


def test_zapa_sessions_are_listed_trimmed_with_empty_names_skipped(env):
    env.setenv("ZAPA_SESSIONS", " s1, team a ,,7b0c1a52-2f3e-4d8e-9b1a-0c6f2d9e8a11,")

    assert load_settings().managed_sessions == [
        "s1", "team a", "7b0c1a52-2f3e-4d8e-9b1a-0c6f2d9e8a11"]


def test_overrides_by_alias_or_field_name_win_over_the_environment(env):
    env.setenv("ZAPA_MAX_RETRIES", "3")

    assert load_settings(ZAPA_MAX_RETRIES=4).max_retries == 4
    assert load_settings(max_retries=5).max_retries == 5


def test_non_integer_max_retries_names_the_variable(env):
    error = config_error(env, ZAPA_MAX_RETRIES="abc")

    assert list(error.problems) == ["ZAPA_MAX_RETRIES"]
    assert "ZAPA_MAX_RETRIES" in str(error)


def test_out_of_range_max_retries_names_the_variable(env):
    error = config_error(env, ZAPA_MAX_RETRIES="-1")

    assert list(error.problems) == ["ZAPA_MAX_RETRIES"]


def test_max_text_parts_defaults_to_10_and_below_1_names_the_variable(env):
    assert load_settings().max_text_parts == 10
    error = config_error(env, ZAPA_MAX_TEXT_PARTS="0")
    assert list(error.problems) == ["ZAPA_MAX_TEXT_PARTS"]


def test_zapw_url_that_is_not_a_url_names_the_variable(env):
    error = config_error(env, ZAPW_URL="notaurl")

    assert list(error.problems) == ["ZAPW_URL"]
    assert "ZAPW_URL" in str(error)


def test_redis_url_with_http_scheme_names_the_variable(env):
    error = config_error(env, REDIS_URL="http://x")

    assert list(error.problems) == ["REDIS_URL"]
    assert "REDIS_URL" in str(error)
    assert "redis://" in error.problems["REDIS_URL"]


def test_unknown_log_level_names_the_variable(env):
    error = config_error(env, ZAPA_LOG_LEVEL="LOUD")

    assert list(error.problems) == ["ZAPA_LOG_LEVEL"]


def test_zapw_body_limit_defaults_to_express_100_kb_and_can_be_set(env):
    assert load_settings().zapw_max_body_bytes == 102_400
    env.setenv("ZAPW_MAX_BODY_BYTES", "204800")
    assert load_settings().zapw_max_body_bytes == 204_800


@pytest.mark.parametrize("value", ["100kb", "1.5", "1023", "-1"])
def test_a_zapw_body_limit_that_is_not_a_whole_number_of_1024_or_more_names_the_variable(
        env, value):
    error = config_error(env, ZAPW_MAX_BODY_BYTES=value)

    assert list(error.problems) == ["ZAPW_MAX_BODY_BYTES"]
    assert "ZAPW_MAX_BODY_BYTES" in str(error)


def test_a_visibility_timeout_one_attempt_does_not_fit_names_the_timeouts_with_values(env):
    error = config_error(env, ZAPA_VISIBILITY_TIMEOUT="20", ZAPW_CONNECT_TIMEOUT="3.05",
                         ZAPW_TIMEOUT="15")

    assert error.problems == {"ZAPA_VISIBILITY_TIMEOUT": (
        "ZAPA_VISIBILITY_TIMEOUT (20 s) must cover one send attempt, ZAPW_CONNECT_TIMEOUT "
        "(3.05 s) + ZAPW_TIMEOUT (15 s) + 4 s: raise it to 23 or lower the other two")}


def test_a_retry_backoff_longer_than_the_visibility_timeout_is_accepted(env):
    # Retries wait in the due set, not in a task the worker holds unacknowledged.
    env.setenv("ZAPA_VISIBILITY_TIMEOUT", "30")
    env.setenv("ZAPA_RETRY_BACKOFF_MAX", "600")
    env.setenv("ZAPW_TIMEOUT", "15")

    settings = load_settings()

    assert (settings.visibility_timeout, settings.retry_backoff_max) == (30, 600)


def test_every_bad_variable_is_reported_at_once(env):
    error = config_error(env, ZAPA_MAX_RETRIES="abc", REDIS_URL="http://x")

    assert {"ZAPA_MAX_RETRIES", "REDIS_URL"} == set(error.problems)


def test_api_key_is_absent_from_repr_and_str_of_the_settings(env):
    env.setenv("ZAPW_API_KEY", API_KEY)

    settings = load_settings()

    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings)
    assert API_KEY not in str(settings.zapw_api_key)


def test_api_key_is_absent_from_a_config_error(env):
    env.setenv("ZAPW_API_KEY", API_KEY)

    error = config_error(env, ZAPA_MAX_RETRIES="abc")

    assert API_KEY not in str(error)
    assert API_KEY not in repr(error.problems)


def test_settings_are_frozen(env):
    settings = load_settings()

    with pytest.raises(ValueError):
        settings.max_retries = 1  # type: ignore[misc]


def test_pacing_is_off_by_default_and_reads_its_three_variables(env):
    assert not PacingRules.from_settings(load_settings()).on
    env.setenv("ZAPA_RECIPIENT_RATE_LIMIT", "1/3s")
    env.setenv("ZAPA_SESSION_DAILY_LIMIT", "800")
    env.setenv("ZAPA_SESSION_WARMUP", " 50, 100,200 ,500")
    assert PacingRules.from_settings(load_settings()) == PacingRules(
        RateLimit(1, 3.0), 800, (50, 100, 200, 500))
    env.setenv("ZAPA_SESSION_DAILY_LIMIT", "off")
    assert load_settings().session_daily_limit is None


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("ZAPA_RECIPIENT_RATE_LIMIT", "3", "is not a rate"),
    ("ZAPA_RECIPIENT_RATE_LIMIT", "0/3s", "at least 1"),
    ("ZAPA_SESSION_DAILY_LIMIT", "0", "greater than or equal to 1"),
    ("ZAPA_SESSION_DAILY_LIMIT", "lots", "valid integer"),
    ("ZAPA_SESSION_WARMUP", "50,0,200", "'0' is not a whole number above 0"),
    ("ZAPA_SESSION_WARMUP", "50;100", "'50;100' is not a whole number above 0"),
    ("ZAPA_SESSION_WARMUP", "1.5", "'1.5' is not a whole number above 0"),
])
def test_a_bad_pacing_setting_names_its_variable(env, variable, value, why):
    error = config_error(env, **{variable: value})
    assert variable in error.problems and why in error.problems[variable]
