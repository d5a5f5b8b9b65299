"""The single-host compose file: valid under the Compose Specification's schema once
interpolated with the example env file, every variable it gives pocdojo is a setting pocdojo
knows, and the start order and health checks hold together."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pocdojo.core.netports import free_ports
from pocdojo.core.settings import Settings
from tests.deploy.known import BOTO3_VARIABLES, known_variables

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose"
SCHEMA = Path(__file__).with_name("compose-spec.json")
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines, as compose reads an env file (no quotes used in ours)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``$X``, ``${X}``, ``${X:-d}``, ``${X-d}``, ``${X:?e}``,
    ``${X?e}``, and ``$$`` for a dollar sign.

    Raises:
        KeyError: a required variable (``?``) is unset or empty.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"] or match["bare"], match["op"], match["arg"] or ""
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and empty:
            return arg
        if op in (":?", "?") and empty:
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def example_env() -> dict[str, str]:
    """The example env file, with the secrets it leaves blank filled in as a user would."""
    env = env_file(COMPOSE / ".env.example")
    return {
        name: value or f"a-{name.lower()}-of-at-least-32-characters" for name, value in env.items()
    }


def loaded() -> dict[str, Any]:
    document = yaml.safe_load(interpolate((COMPOSE / "compose.yaml").read_text(), example_env()))
    assert isinstance(document, dict)
    return document


def pocdojo_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/container/Dockerfile"
    }


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(loaded()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_does_find_mistakes() -> None:
    broken = json.loads(json.dumps(loaded()))  # unshare what YAML anchors share
    broken["services"]["server"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["haproxy"]["healthcheck"]["intervall"] = "5s"
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert len(list(validator.iter_errors(broken))) == 2


def test_every_variable_it_needs_is_in_the_example_env_file() -> None:
    text = (COMPOSE / "compose.yaml").read_text()
    needed = {m["bare"] for m in _VARIABLE.finditer(text) if m["bare"]}
    needed |= {m["name"] for m in _VARIABLE.finditer(text) if m["name"] and not m["op"]}
    needed |= {m["name"] for m in _VARIABLE.finditer(text) if m["op"] in (":?", "?")}
    assert needed <= set(env_file(COMPOSE / ".env.example")), needed
    with pytest.raises(KeyError, match="JWT_SECRET"):
        interpolate(text, {**example_env(), "JWT_SECRET": ""})


def test_pocdojo_is_given_only_settings_it_knows() -> None:
    known = known_variables()
    services = pocdojo_services(loaded())
    assert set(services) == {"migrate", "server", "worker"}
    for name, service in services.items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables pocdojo does not read: {sorted(unknown)}"
        # and the values are ones Settings accepts
        variables = {
            k: str(v) for k, v in service["environment"].items() if k not in BOTO3_VARIABLES
        }
        Settings.load(**{k.lower(): v for k, v in variables.items()})


def test_start_order_and_health_checks_hold_together() -> None:
    services = loaded()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on an unknown {dependency}"
            if rule["condition"] == "service_healthy":
                check = services[dependency].get("healthcheck")
                assert check, f"{dependency} has no healthcheck"
                assert not check.get("disable"), f"{dependency} has its healthcheck off"
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency
    for node in ("server", "worker"):
        assert services[node]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["server"]["command"] == ["serve", "--no-worker"]
    assert services["server"]["deploy"]["replicas"] == 3


def test_a_node_drains_before_haproxy_or_docker_give_up_on_it() -> None:
    server = loaded()["services"]["server"]
    environment = server["environment"]
    config = (COMPOSE / "haproxy.cfg").read_text()
    inter, fall = re.findall(r"default-server inter (\d+)s fall (\d+)", config)[0]
    # HAProxy sees /readyz fail `fall` times before the node stops listening...
    assert float(environment["DRAIN_DELAY"]) > int(inter) * int(fall)
    # ...and the drain ends before Docker kills the container.
    grace = int(server["stop_grace_period"].removesuffix("s"))
    assert grace > float(environment["DRAIN_DELAY"]) + float(environment["DRAIN_TIMEOUT"])
    assert environment["JWT_SECRET"]  # the shared settings are merged in, not replaced


def test_haproxy_checks_readiness_and_keeps_websockets_open() -> None:
    config = (COMPOSE / "haproxy.cfg").read_text()
    assert re.search(r"^\s+timeout tunnel \d+[smh]$", config, re.MULTILINE)
    assert "http-check send meth GET uri /readyz" in config
    assert config.count("server-template node 1-20 server:8080") == 2
    assert "balance uri path-only depth 4\n    hash-type consistent" in config
    haproxy = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None
    )
    if haproxy is None:
        pytest.skip("haproxy is not installed (Debian's haproxy): its own check did not run")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(COMPOSE / "haproxy.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_coturn_accepts_its_command_line(tmp_path: Path) -> None:
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.skip("coturn is not installed (Debian's coturn): its options were not tried")
    (port,) = free_ports(1)
    options = [
        option
        for option in loaded()["services"]["coturn"]["command"]
        if not option.startswith("--listening-port=")
    ]
    argv = [turnserver, *options, f"--listening-port={port}", "--listening-ip=127.0.0.1"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    ) as server:
        try:
            output, _ = server.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # still serving: every option was taken
            server.terminate()
            output, _ = server.communicate(timeout=10)
        else:
            pytest.fail(f"turnserver exited with {server.returncode}:\n{output}")
    assert "unrecognized option" not in output
    assert "Black listing: 10.0.0.0-10.255.255.255" in output
