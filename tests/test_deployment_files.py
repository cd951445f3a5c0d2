"""The deployment files, checked without a container engine or a GitHub runner.

Neither Docker nor GitHub Actions can run where these tests run, so they check what can
be checked: the YAML parses, every long-running service has a health check, every ``dlp``
command line names real commands and options, compose sets only real settings, the image
runs as non-root, and the workflow's test step is ``.ci/run`` itself.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dlp.cli.main import app
from dlp.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
GUIDE = ROOT / "docs" / "operations.md"
SETTINGS_VARIABLES = {f"DLP_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def dlp_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the dlp image."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith("dlp:")
    }


def dockerfile_instruction(keyword: str) -> list[str]:
    """The arguments of each ``keyword`` line of the Dockerfile (continuations joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        line.split(None, 1)[1] if " " in line.strip() else ""
        for line in text.splitlines()
        if line.strip().upper().startswith(f"{keyword} ")
    ]


def dockerfile_command_lines() -> list[list[str]]:
    """``dlp`` argument lists the image runs: its entrypoint with its default command."""
    (entrypoint,) = dockerfile_instruction("ENTRYPOINT")
    (command,) = dockerfile_instruction("CMD")
    assert json.loads(entrypoint) == ["dlp"]
    return [json.loads(command)]


def compose_command_lines() -> list[list[str]]:
    """``dlp`` argument lists in compose: dlp services' commands and health checks."""
    lines = []
    for service in dlp_services().values():
        lines.append(service["command"])
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "dlp"]:
            lines.append(test[2:])
    return lines


def guide_command_lines() -> list[list[str]]:
    """``dlp ...`` commands the operator guide quotes in backticks."""
    return [shlex.split(found)[1:] for found in re.findall(r"`(dlp [^`]+)`", GUIDE.read_text())]


def resolve(args: list[str]) -> tuple[list[str], Any, list[str]]:
    """The subcommand path, its (typer) click command and the options named in ``args``."""
    command: Any = typer.main.get_command(app)
    path = []
    for arg in args:
        subcommands = getattr(command, "commands", None)
        if arg.startswith("-") or subcommands is None:
            break
        assert arg in subcommands, f"`dlp {' '.join([*path, arg])}` is not a command"
        command = subcommands[arg]
        path.append(arg)
    options = [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]
    return path, command, options


def assert_real_command_line(args: list[str]) -> None:
    path, command, options = resolve(args)
    assert path, f"no subcommand in `dlp {' '.join(args)}`"
    helped = CliRunner().invoke(app, [*path, "--help"])
    assert helped.exit_code == 0, helped.output
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    unknown = [option for option in options if option not in known]
    assert not unknown, f"`dlp {' '.join(args)}`: no such option(s) {unknown}"


def test_compose_parses_and_every_service_has_a_health_check_or_runs_once() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "minio", "create-bucket", "migrate", "api", "worker"} <= set(
        services
    )
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        check = service.get("healthcheck", {})
        assert one_shot or (check.get("test") and not check.get("disable")), name
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])


def test_every_dlp_command_line_in_the_dockerfile_compose_and_guide_is_a_real_command() -> None:
    lines = dockerfile_command_lines() + compose_command_lines() + guide_command_lines()
    assert ["serve", "--host", "0.0.0.0"] in lines
    assert ["serve", "--no-worker", "--host", "0.0.0.0"] in lines
    for args in lines:
        assert_real_command_line(args)
    for args in dockerfile_command_lines() + compose_command_lines():
        # The exact argument lists parse, values included.
        path, command, _options = resolve(args)
        command.make_context(" ".join(["dlp", *path]), list(args[len(path) :]))


def test_the_command_line_check_catches_a_misspelt_option() -> None:
    with pytest.raises(AssertionError, match="no such option"):
        assert_real_command_line(["worker", "--queue", "training"])
    with pytest.raises(AssertionError, match="is not a command"):
        assert_real_command_line(["db", "migrate"])


def test_compose_sets_only_real_settings_and_aws_variables() -> None:
    env_lines = [
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dlp_names = {name for name in env_lines if name.startswith("DLP_")}
    dlp_names |= set(re.findall(r"\b(DLP_[A-Z_]+)=", " ".join(dockerfile_instruction("ENV"))))
    set_in_compose = {name for s in dlp_services().values() for name in s["environment"]}
    for name in dlp_names | set_in_compose:
        assert name in SETTINGS_VARIABLES or name.startswith("AWS_"), name
    # The other lines of .env.example feed compose's ${...}: each is used there.
    compose_text = COMPOSE.read_text()
    for name in set(env_lines) - dlp_names:
        assert "${" + name in compose_text, f"{name} in .env.example is used nowhere"
    for service in dlp_services().values():
        assert service["env_file"] == ".env"


def test_the_image_runs_as_non_root_with_a_health_check() -> None:
    users = dockerfile_instruction("USER")
    assert users, "the Dockerfile has no USER line"
    user = users[-1].split(":", 1)[0].strip()
    assert user not in {"0", "root", ""}
    (healthcheck,) = dockerfile_instruction("HEALTHCHECK")
    assert "/health" in healthcheck
    assert "EXPOSE 8000" in DOCKERFILE.read_text()
    assert re.search(r"^ARG VARIANT=cpu$", DOCKERFILE.read_text(), re.MULTILINE)
    # Everything the image copies from the build context survives .dockerignore.
    ignored = (ROOT / ".dockerignore").read_text()
    for copy in dockerfile_instruction("COPY"):
        if copy.startswith("--from"):
            continue
        for source in copy.split()[:-1]:
            assert f"!{source.rstrip('/')}" in ignored.replace("/\n", "\n"), source


def test_the_workflow_runs_exactly_ci_run_beside_postgres_and_redis_and_builds_both_images() -> (
    None
):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    test = workflow["jobs"]["test"]
    runs = [step["run"] for step in test["steps"] if "run" in step]
    assert runs == [".ci/run"], "the test job must run .ci/run and nothing else"
    (step,) = [step for step in test["steps"] if "run" in step]
    assert step["env"]["CI"] == "true"
    assert step["env"]["DLP_TEST_POSTGRES_URL"].startswith("postgresql://postgres@postgres:")
    assert step["env"]["DLP_TEST_REDIS_URL"].startswith("redis://redis:")
    for service in ("postgres", "redis"):
        assert "--health-cmd" in test["services"][service]["options"]
    image = workflow["jobs"]["image"]
    assert image["strategy"]["matrix"]["variant"] == ["cpu", "cuda"]
    build = next(s for s in image["steps"] if "docker/build-push-action" in s.get("uses", ""))
    assert build["with"]["push"] is False
    assert build["with"]["build-args"] == "VARIANT=${{ matrix.variant }}"
