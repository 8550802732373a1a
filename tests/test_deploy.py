"""The deployment files in deploy/: they validate, they name every setting, the units parse.

No Docker engine is needed: `docker-compose config` validates and resolves the compose file
on its own. CI installs Debian's docker-compose, so a missing one fails here rather than
skipping the check silently.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
UNITS = DEPLOY / "systemd"

# Variables of Compose itself (interpolation only; never handed to the service).
COMPOSE_ONLY = {"COMPOSE_PROJECT_NAME", "POSTGRES_PASSWORD", "SITE_ADDRESS", "APP_IMAGE"}
# MIMAMORI_* names the code reads that are not settings of a running service.
NOT_SETTINGS = {
    "MIMAMORI_NEW_USER_PASSWORD",  # `mimamori user create` input, never kept in a file
}
SETTING_NAMES = {f"MIMAMORI_{name.upper()}" for name in Settings.model_fields}


# --- helpers -------------------------------------------------------------------------------


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed, so deploy/compose.yaml cannot be validated. "
            "Install it (Debian: apt-get install docker-compose; .ci/run does) and rerun.",
            pytrace=False,
        )
    return exe


def _clean_env() -> dict[str, str]:
    """The caller's environment minus anything that would leak into the compose file."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MIMAMORI_", "COMPOSE_", "DOCKER_")) and key not in COMPOSE_ONLY
    }


def _compose(args: list[str], *, compose_file: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_docker_compose(), "-f", str(compose_file), *args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_deploy(tmp_path: Path, env_file: str | None) -> Path:
    """deploy/ without any operator's deploy/.env, optionally with the given one."""
    target = tmp_path / "deploy"
    target.mkdir()
    for name in ("compose.yaml", "Caddyfile", "Dockerfile"):
        shutil.copy(DEPLOY / name, target / name)
    if env_file is not None:
        (target / ".env").write_text(env_file, encoding="utf-8")
    return target


def _resolved(tmp_path: Path, env_file: str | None = None) -> dict[str, Any]:
    deploy = _copy_deploy(tmp_path, env_file)
    result = _compose(["config"], compose_file=deploy / "compose.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _by_command(config: dict[str, Any], *words: str) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in config["services"].items()
        if _command(service)[: 1 + len(words)] == ["mimamori", *words]
    }


def _replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {
        name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()
    }


def _healthcheck_disabled(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("disable")) or check.get("test") in (["NONE"], "NONE")


def _env_example_names() -> set[str]:
    """Every KEY in .env.example, commented out or not."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def _variables_read_by_code() -> set[str]:
    """MIMAMORI_* names that appear as whole string literals in the three packages."""
    names: set[str] = set()
    for package in ("service", "scheduler", "i18n"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            names.update(re.findall(r"""["'](MIMAMORI_[A-Z][A-Z0-9_]*)["']""", text))
    return names - NOT_SETTINGS


def _read_unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"), source=name)
    return parser


# --- compose -------------------------------------------------------------------------------


def test_compose_file_validates_as_ci_runs_it() -> None:
    result = _compose(["config", "-q"], compose_file=Path("deploy/compose.yaml"), cwd=REPO)
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_compose_validates_without_an_env_file(tmp_path: Path) -> None:
    deploy = _copy_deploy(tmp_path, env_file=None)
    assert not (deploy / ".env").exists()
    result = _compose(["config", "-q"], compose_file=deploy / "compose.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_compose_services_and_commands(tmp_path: Path) -> None:
    config = _resolved(tmp_path)
    services = config["services"]
    assert {"postgres", "migrate", "proxy"} <= set(services)

    assert _command(services["migrate"]) == ["mimamori", "db", "upgrade"]
    assert services["migrate"].get("restart", "no") == "no"

    apis = _by_command(config, "serve")
    assert sum(_replicas(s) for s in apis.values()) == 2, f"API replicas: {sorted(apis)}"
    for service in apis.values():
        command = _command(service)
        assert command[command.index("--host") + 1] == "0.0.0.0"

    schedulers = _by_command(config, "scheduler")
    assert sum(_replicas(s) for s in schedulers.values()) == 2, sorted(schedulers)
    for service in schedulers.values():
        assert _command(service) == ["mimamori", "scheduler"]
        # The image's HTTP health check would mark a process that does not listen unhealthy.
        assert _healthcheck_disabled(service)

    for name, service in {**apis, **schedulers}.items():
        depends = _depends_on(service)
        assert depends.get("migrate") == "service_completed_successfully", name
        assert depends.get("postgres") == "service_healthy", name
        assert service.get("restart") in ("always", "unless-stopped"), name
    assert _depends_on(services["migrate"]).get("postgres") == "service_healthy"

    postgres = services["postgres"]
    assert postgres.get("healthcheck", {}).get("test"), "postgres needs a health check"
    mounts = [
        str(v) if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in postgres["volumes"]
    ]
    assert any(
        m.split(":")[0] in config.get("volumes", {}) and ":/var/lib/postgresql/data" in m
        for m in mounts
    ), mounts

    proxy = services["proxy"]
    assert set(apis) <= set(_depends_on(proxy))
    caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    upstreams = re.search(r"^\s*reverse_proxy\s+([^{\n]+)", caddyfile, flags=re.MULTILINE)
    assert upstreams is not None
    assert sorted(upstreams.group(1).split()) == sorted(f"{name}:8000" for name in apis)
    # Twilio signs the exact URL: the proxy must not rewrite it.
    assert not re.search(r"^\s*(rewrite|uri|handle_path|redir)\b", caddyfile, flags=re.MULTILINE)


def test_compose_hands_every_setting_to_the_service(tmp_path: Path) -> None:
    config = _resolved(tmp_path)
    wanted = SETTING_NAMES | _variables_read_by_code()
    for name, service in config["services"].items():
        if not _command(service)[:1] == ["mimamori"]:
            continue
        environment = service.get("environment") or {}
        missing = sorted(wanted - set(environment))
        assert not missing, f"{name} does not pass {missing} (add them to x-mimamori-environment)"
        # Without deploy/.env the stack must refuse placeholder secrets, not run with them.
        assert environment["MIMAMORI_ENVIRONMENT"] == "production"
        assert environment["MIMAMORI_DATABASE_URL"].startswith("postgresql://")


def test_compose_reads_the_operators_env_file(tmp_path: Path) -> None:
    env_file = ENV_EXAMPLE.read_text(encoding="utf-8")
    env_file = env_file.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=0123abcd\n")
    env_file += "MIMAMORI_TWILIO_PREVIOUS_AUTH_TOKENS='[\"old-token\"]'\n"
    config = _resolved(tmp_path, env_file)
    environment = config["services"]["migrate"]["environment"]
    assert environment["MIMAMORI_PUBLIC_URL"] == "https://mimamori.example.jp"
    assert environment["MIMAMORI_DATABASE_URL"] == (
        "postgresql://mimamori:0123abcd@postgres:5432/mimamori"
    )
    assert json.loads(environment["MIMAMORI_TWILIO_PREVIOUS_AUTH_TOKENS"]) == ["old-token"]
    # Commented out in the example: not passed, so the service's default applies.
    assert environment.get("MIMAMORI_ACCESS_TOKEN_MINUTES") is None
    assert config["services"]["proxy"]["environment"]["SITE_ADDRESS"] == "mimamori.example.jp"


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_names_every_setting() -> None:
    missing = sorted(SETTING_NAMES - _env_example_names())
    assert not missing, f"deploy/.env.example does not mention {missing}"


def test_env_example_names_every_variable_the_code_reads() -> None:
    missing = sorted(_variables_read_by_code() - _env_example_names())
    assert not missing, f"deploy/.env.example does not mention {missing}"


def test_env_example_names_nothing_unknown() -> None:
    known = SETTING_NAMES | _variables_read_by_code() | COMPOSE_ONLY
    unknown = sorted(_env_example_names() - known)
    assert not unknown, f"deploy/.env.example names unknown variables {unknown} (typo?)"


def test_env_example_loads_and_refuses_the_missing_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith("MIMAMORI_"):
            monkeypatch.delenv(key)
    # As shipped: production with an empty secret key must refuse to start.
    with pytest.raises(ValueError, match="MIMAMORI_SECRET_KEY"):
        Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]

    # Every example value, the commented-out ones included, has the right type.
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"^#\s*(MIMAMORI_[A-Z0-9_]+=)", r"\1", text, flags=re.MULTILINE)
    filled = tmp_path / "filled.env"
    with_secret = uncommented.replace(
        "MIMAMORI_SECRET_KEY=\n", f"MIMAMORI_SECRET_KEY={'0123456789abcdef' * 4}\n"
    )
    filled.write_text(with_secret)
    # Production without a Twilio account would send nothing: refused unless said on purpose.
    with pytest.raises(ValueError, match="MIMAMORI_TELEPHONY_PROVIDER=console"):
        Settings(_env_file=filled)  # type: ignore[call-arg]
    filled.write_text(
        with_secret.replace("MIMAMORI_TWILIO_ACCOUNT_SID=\n", f"MIMAMORI_TWILIO_ACCOUNT_SID=AC{'0' * 32}\n")
        .replace("MIMAMORI_TWILIO_AUTH_TOKEN=\n", "MIMAMORI_TWILIO_AUTH_TOKEN=token\n")
    )
    settings = Settings(_env_file=filled)  # type: ignore[call-arg]
    assert settings.environment == "production"
    assert settings.public_url == "https://mimamori.example.jp"
    assert settings.twilio_previous_auth_tokens == ["old-auth-token"]
    assert settings.access_token_minutes == 480
    assert settings.database_url.startswith("postgresql://")


# --- systemd ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "arguments"),
    [
        ("mimamori-api.service", ["serve", "--host", "127.0.0.1", "--port", "8000"]),
        ("mimamori-scheduler.service", ["scheduler"]),
        ("mimamori-migrate.service", ["db", "upgrade"]),
    ],
)
def test_systemd_unit(unit: str, arguments: list[str]) -> None:
    parser = _read_unit(unit)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    service = parser["Service"]
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "mimamori" and command[0].startswith("/")
    assert command[1:] == arguments
    assert service["User"] == "mimamori"
    assert service["EnvironmentFile"] == "/etc/mimamori/mimamori.env"
    for option, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service.get(option) == value, f"{unit}: {option}"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    if unit == "mimamori-migrate.service":
        assert service["Type"] == "oneshot"
    else:
        assert service["Restart"] == "always"
        assert "mimamori-migrate.service" in parser["Unit"]["Requires"].split()
        assert "mimamori-migrate.service" in parser["Unit"]["After"].split()


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the units are still parsed above)")
    for unit in UNITS.glob("*.service"):
        text = unit.read_text(encoding="utf-8")
        # verify checks that the executable exists; the real one lives in /opt/mimamori.
        (tmp_path / unit.name).write_text(
            text.replace("/opt/mimamori/bin/mimamori", sys.executable)
        )
    result = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile ------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_dockerfile() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2, "multi-stage: a builder and a slim final stage"
    assert "-slim" in stages[-1]
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    ops = dict(final)
    assert ops["USER"].split(":")[0] not in ("root", "0")
    assert ops["EXPOSE"] == "8000"
    assert "/healthz" in ops["HEALTHCHECK"]
    assert json.loads(ops["CMD"]) == ["mimamori", "serve", "--host", "0.0.0.0", "--port", "8000"]
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "[postgres]" in runs
    assert "i18n.catalogs compile" in runs
    # Everything copied from the build context (the repository root) exists.
    for op, args in instructions:
        if op == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
