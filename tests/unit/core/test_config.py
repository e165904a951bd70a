from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from driftloop.core import ConfigError, Settings, load_settings, local_path


def write(folder: Path, text: str) -> Path:
    path = folder / "driftloop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path, environ={})
    assert settings.serving.batching.max_batch_size == 256
    assert settings.root == tmp_path.resolve()
    assert settings.features.online_store.startswith("sqlite://")


def test_precedence_arguments_over_environment_over_file_over_defaults(tmp_path: Path) -> None:
    write(tmp_path, "[serving]\nport = 7000\nworkers = 3\nhost = '0.0.0.0'\n")
    env = {"DRIFTLOOP_SERVING__PORT": "8000", "DRIFTLOOP_SERVING__WORKERS": "2"}
    settings = load_settings(root=tmp_path, environ=env, overrides={"serving.port": 9000})
    assert settings.serving.port == 9000  # argument
    assert settings.serving.workers == 2  # environment
    assert settings.serving.host == "0.0.0.0"  # file
    assert settings.serving.max_instances == 1_000  # default


def test_file_is_found_from_a_subfolder_and_sets_the_root(tmp_path: Path) -> None:
    write(tmp_path, "[project]\nname = 'fraud'\n")
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    settings = load_settings(root=sub, environ={})
    assert settings.project.name == "fraud"
    assert settings.root == tmp_path.resolve()
    assert local_path(settings.audit.url, settings.root) == tmp_path.resolve() / (
        ".driftloop/audit.db"
    )


def test_unknown_key_in_file_names_key_file_and_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[serving.batching]\nmax_batch = 64\n")
    with pytest.raises(ConfigError) as err:
        load_settings(root=tmp_path, environ={})
    message = str(err.value)
    assert "serving.batching.max_batch" in message
    assert str(path) in message
    assert "max_batch_size" in message


def test_wrong_type_names_the_expected_form(tmp_path: Path) -> None:
    write(tmp_path, "[serving]\nport = 'eighty'\n")
    with pytest.raises(ConfigError, match=r"serving\.port .*valid integer, got 'eighty'"):
        load_settings(root=tmp_path, environ={})


def test_unknown_backend_scheme_is_refused_with_the_supported_ones(tmp_path: Path) -> None:
    env = {"DRIFTLOOP_FEATURES__ONLINE_STORE": "memcached://127.0.0.1"}
    with pytest.raises(ConfigError) as err:
        load_settings(root=tmp_path, environ=env)
    message = str(err.value)
    assert "DRIFTLOOP_FEATURES__ONLINE_STORE" in message
    assert "'sqlite://...' or 'redis://...'" in message
    assert "memcached" in message


def test_misspelled_environment_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DRIFTLOOP_SERVNG__PORT"):
        load_settings(root=tmp_path, environ={"DRIFTLOOP_SERVNG__PORT": "1"})


def test_unrelated_driftloop_variables_are_not_settings(tmp_path: Path) -> None:
    env = {"DRIFTLOOP_REQUIRE_SERVICES": "1", "DRIFTLOOP_SOMETHING": "x"}
    assert load_settings(root=tmp_path, environ=env).serving.port == 8000


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[serving\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_settings(root=tmp_path, environ={})
    assert str(path) in str(err.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[serving]\nport = 1234\n", encoding="utf-8")
    settings = load_settings(root="/", environ={"DRIFTLOOP_CONFIG": str(path)})
    assert settings.serving.port == 1234


def test_decision_bands_must_be_ordered_and_named(tmp_path: Path) -> None:
    write(tmp_path, "[models.m.decision]\nbands = [0.9, 0.5]\nlabels = ['a', 'b', 'c']\n")
    with pytest.raises(ConfigError, match="strictly ascending"):
        load_settings(root=tmp_path, environ={})
    write(tmp_path, "[models.m.decision]\nthreshold = 0.5\nlabels = ['a']\n")
    with pytest.raises(ConfigError, match="labels needs 2 names"):
        load_settings(root=tmp_path, environ={})


def test_the_old_global_decision_bands_say_where_decisions_went(tmp_path: Path) -> None:
    write(tmp_path, "[serving.decision]\napprove_below = 0.2\ndecline_above = 0.8\n")
    with pytest.raises(ConfigError, match=r"models.<name>.decision"):
        load_settings(root=tmp_path, environ={})


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.serving.port = 1  # type: ignore[misc]


def test_model_sections_are_checked_with_the_key_and_known_keys(tmp_path: Path) -> None:
    config = tmp_path / "driftloop.toml"
    config.write_text('[models.loans]\ndata = "loans.csv"\nlabell = "repaid"\n')
    with pytest.raises(ConfigError, match=r"models\.loans\.labell .*Known here: .*label"):
        load_settings(config)
    config.write_text("[models.loans.decision]\nbands = [0.2, 0.8]\nlabels = ['a', 'b']\n")
    with pytest.raises(ConfigError, match=r"2 cut\(s\) make 3 bands"):
        load_settings(config)
    config.write_text("[models.loans.gates]\nmax_ece = 2\n")
    with pytest.raises(ConfigError, match=r"models\.loans\.gates\.max_ece"):
        load_settings(config)


def test_a_model_section_overrides_the_gates_and_names_its_decisions(tmp_path: Path) -> None:
    config = tmp_path / "driftloop.toml"
    config.write_text(
        '[gates]\nmax_ece = 0.2\n[models.fraud]\nlabel = "is_fraud"\n'
        '[models.fraud.gates]\nsensitive_attribute = "age_band"\n'
        "[models.fraud.decision]\nbands = [0.2, 0.8]\n"
        'labels = ["approve", "review", "decline"]\n'
    )
    settings = load_settings(config)
    gates = settings.gates_for("fraud")
    assert (gates.sensitive_attribute, gates.max_ece) == ("age_band", 0.2)
    decision = settings.model("fraud").decision
    assert decision is not None
    assert [decision.decide(s) for s in (0.1, 0.2, 0.5, 0.8, 0.99)] == [
        "approve", "review", "review", "decline", "decline"
    ]  # fmt: skip
    assert settings.model("other").label is None


def test_hostile_client_limits_are_set_by_file_or_environment_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "[serving]\nmax_header_bytes = 16384\nheader_timeout_s = 5\n")
    env = {"DRIFTLOOP_SERVING__MAX_CONNECTIONS": "64", "DRIFTLOOP_SERVING__KEEP_ALIVE_S": "2.5"}
    serving = load_settings(root=tmp_path, environ=env).serving
    assert (serving.max_header_bytes, serving.header_timeout_s) == (16_384, 5.0)
    assert (serving.max_connections, serving.keep_alive_s, serving.body_timeout_s) == (64, 2.5, 30)
    for key, bad in [("max_connections", "0"), ("max_header_bytes", "100"),
                     ("header_timeout_s", "0"), ("body_timeout_s", "-1")]:  # fmt: skip
        with pytest.raises(ConfigError, match=rf"serving\.{key} "):
            load_settings(root=tmp_path, environ={f"DRIFTLOOP_SERVING__{key.upper()}": bad})
