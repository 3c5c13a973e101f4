"""compose.yaml and its overlays: valid Compose, healthy ordering, no default secrets, loopback ports,
the shared stage of the Python images built first, and `make env` writing real credentials."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The Compose specification's JSON schema, vendored from compose-spec/compose-spec (Apache-2.0),
# schema/compose-spec.json at commit a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-28).
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
COMPOSE_FILES = ["compose.yaml", "compose.gpu.yaml", "compose.local.yaml"]
ALWAYS_ON = {"minio", "ollama", "chromadb", "evaluator"}
STAGES = {"scrape", "process", "tokenize", "train", "export", "serve", "eval"}
SHARED_STAGE = "services/python-base/Dockerfile"
BUILD_ONLY = {"python-base", "python-base-cuda"}  # that stage on the Python and on the CUDA base
PROJECT_DOCKERFILES = {f"services/{name}/Dockerfile" for name in ("scraper", "processor", "trainer", "exporter", "evaluator")}
SECRET = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER|API_KEY|AUTH")
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("compose.yaml")


def environment(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(name):
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(load(name)), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_overlays_only_touch_services_compose_yaml_defines(compose):
    for name in ("compose.gpu.yaml", "compose.local.yaml"):
        assert set(load(name)["services"]) <= set(compose["services"]), name


def test_always_on_services_have_healthchecks_and_stages_are_one_shot(compose):
    services = compose["services"]
    long_running = {n for n, s in services.items()
                    if "profiles" not in s and s.get("restart") != "no" and s.get("scale") != 0}
    assert long_running == ALWAYS_ON
    for name in long_running:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for name in STAGES:
        assert services[name]["profiles"] and services[name]["restart"] == "no", name


def test_dependents_wait_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            one_shot = services[dep].get("restart") == "no"
            want = "service_completed_successfully" if one_shot else "service_healthy"
            assert spec["condition"] == want, f"{name} -> {dep}: {spec['condition']}, want {want}"
    for name in STAGES | {"evaluator"}:
        assert "minio-init" in services[name]["depends_on"], f"{name} must wait for the bucket"


def test_no_secret_has_a_default():
    for name in COMPOSE_FILES:
        for match in VARIABLE.finditer((ROOT / name).read_text()):
            if SECRET.search(match["name"]):
                assert match["op"] == ":?", f"{name}: ${{{match['name']}{match['op'] or ''}...}} has a default"
    for name, service in load("compose.yaml")["services"].items():
        for key, value in environment(service).items():
            if SECRET.search(key):
                assert value is None or re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), \
                    f"{name}: {key} is set to a literal"
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    assert all(value == "" for key, value in example.items() if SECRET.search(key))


def test_env_example_documents_every_variable_compose_reads():
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    used = {m["name"] for name in COMPOSE_FILES for m in VARIABLE.finditer((ROOT / name).read_text())}
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_every_published_port_binds_to_loopback():
    for name in COMPOSE_FILES:
        for service_name, service in load(name)["services"].items():
            for port in service.get("ports", []):
                host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
                assert host_ip == "127.0.0.1", f"{name}: {service_name} publishes {port!r} beyond loopback"


def test_artifacts_move_only_through_minio(compose):
    for name in STAGES | {"evaluator"}:
        env = environment(compose["services"][name])
        assert env["ALS_STORE__BACKEND"] == "s3" and env["ALS_STORE__ENDPOINT"] == "minio:9000", name


def test_gpu_overlay_reserves_one_nvidia_gpu_for_the_trainer_and_ollama():
    services = load("compose.gpu.yaml")["services"]
    assert set(services) == {"train", "ollama"}
    for service in services.values():
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


def test_upstream_images_are_pinned(compose):
    for name, service in compose["services"].items():
        if "build" not in service and "image" in service and not service["image"].startswith("als-lm/"):
            tag = service["image"].split("@")[0].rsplit(":", 1)
            assert len(tag) == 2 and tag[1] != "latest", f"{name}: {service['image']} is not pinned"


def test_python_images_start_from_the_shared_stage_which_compose_builds_first(compose):
    """`FROM python-base` in the project Dockerfiles is the additional context `service:<base>`, which
    Compose (and podman-compose) build before the image; the bases are built, never run."""
    services = compose["services"]
    assert {n for n, s in services.items() if s.get("scale") == 0} == BUILD_ONLY
    for name in BUILD_ONLY:
        base = services[name]
        assert base["build"]["dockerfile"] == SHARED_STAGE and not {"ports", "profiles", "depends_on"} & set(base)
    bases = {}
    for name, service in services.items():
        if service.get("build", {}).get("dockerfile") in PROJECT_DOCKERFILES:
            context = service["build"].get("additional_contexts", {}).get("python-base", "")
            assert context.removeprefix("service:") in BUILD_ONLY, f"{name}: python-base is {context!r}"
            bases[service["build"]["dockerfile"]] = context.removeprefix("service:")
    assert set(bases) == PROJECT_DOCKERFILES
    assert {dockerfile for dockerfile, base in bases.items() if base == "python-base-cuda"} == \
        {"services/trainer/Dockerfile"}, "only the trainer needs the CUDA userland"
    cuda = services["python-base-cuda"]["build"]["args"]["BASE_IMAGE"]
    assert cuda.startswith("nvidia/cuda:") and not cuda.endswith(":latest"), f"{cuda} is not pinned"


def test_local_overlay_builds_the_shared_stage_on_the_local_base():
    services = load("compose.local.yaml")["services"]
    for name in BUILD_ONLY:
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "localhost/als-base:bookworm", name
        # podman-compose 1.6 builds only services with a container: without one it would build the
        # images before their base.
        assert services[name]["scale"] == 1, name
    assert not any(
        "BASE_IMAGE" in s.get("build", {}).get("args", {}) for n, s in services.items()
        if n in {"scrape", "process", "train", "export", "evaluator"}
    ), "the project images take their base only from the shared stage"


def test_make_env_writes_generated_credentials_and_keeps_an_existing_file(tmp_path):
    env_file = tmp_path / ".env"

    def make_env(*args: str) -> dict[str, str]:
        subprocess.run([ROOT / "scripts/make_env.sh", *args], env={**os.environ, "ENV_FILE": str(env_file)},
                       check=True, capture_output=True, timeout=30)
        return dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))

    first = make_env()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = [first["MINIO_ROOT_PASSWORD"], first["ALS_STORE__SECRET_KEY"]]
    assert all(len(s) >= 32 for s in secrets) and secrets[0] != secrets[1]
    assert first["MINIO_ROOT_USER"] != first["ALS_STORE__ACCESS_KEY"]
    assert first["ALS_UID"] == ("10001" if os.getuid() == 0 else str(os.getuid())), "the stack never runs as root"
    assert make_env() == first, "an existing .env must be kept"
    assert make_env("--force")["MINIO_ROOT_PASSWORD"] != first["MINIO_ROOT_PASSWORD"]


def test_make_help_lists_the_container_targets():
    out = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30).stdout
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines() if line.strip()}
    assert {"env", "build", "up", "down", "scrape", "process", "train", "export", "eval", "ui", "logs",
            "lock", "verify-containers", "demo", "test"} <= listed
