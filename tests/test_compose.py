"""Checks of docker-compose.yml and the Dockerfile, since no Docker engine runs where the tests do.

The compose file is validated against the Compose Specification's JSON schema (kept beside the
repository in ../shared/reference/compose-spec.json, or at $COMPOSE_SPEC_JSON), then checked for
what the pipeline needs: a healthy broker with its management UI, a worker that scales, tools
that share the key store, and an image that really builds the three binaries.
"""

import json
import os
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
BINARIES = ("producer", "worker", "consumer")


def compose_spec_path() -> Path:
    override = os.environ.get("COMPOSE_SPEC_JSON")
    if override:
        return Path(override)
    return ROOT.parent / "shared" / "reference" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        document = yaml.safe_load(f)
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def container_ports(service: dict) -> set[int]:
    """Container-side ports of a service's `ports` (short "host:container" or long syntax)."""
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            target = str(entry).split("/")[0].rsplit(":", 1)[-1]
            ports.add(int(target))
    return ports


def environment(service: dict) -> dict:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def volume_mounts(service: dict) -> dict[str, str]:
    """Named-volume or bind source -> container path, for short and long volume syntax."""
    mounts = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts[entry["source"]] = entry["target"]
        else:
            source, target = str(entry).split(":")[:2]
            mounts[source] = target
    return mounts


def dockerfile_of(service: dict) -> Path:
    build = service["build"]
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def test_compose_file_matches_the_compose_specification(compose):
    spec = compose_spec_path()
    if not spec.is_file():
        pytest.fail(
            f"Compose Specification schema not found at {spec}: the reference material "
            "(shared/reference/compose-spec.json) must sit beside the repository, "
            "or set COMPOSE_SPEC_JSON to its path"
        )
    schema = json.loads(spec.read_text(encoding="utf-8"))
    # The schema declares draft-07; say so rather than let jsonschema guess from its $schema URL.
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_schema_validation_rejects_a_broken_file():
    """The validation above can fail: an unknown service key is refused."""
    spec = compose_spec_path()
    if not spec.is_file():
        pytest.fail(f"Compose Specification schema not found at {spec}")
    validator = jsonschema.Draft7Validator(json.loads(spec.read_text(encoding="utf-8")))
    broken = {"services": {"worker": {"image": "x", "replicas_typo": 3}}}
    assert list(validator.iter_errors(broken))


def test_no_obsolete_version_key(compose):
    assert "version" not in compose, "the Compose Specification ignores `version:`; remove it"


def test_rabbitmq_has_management_ui_healthcheck_and_data_volume(compose, services):
    rabbitmq = services["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:3\.1[23]-management(-alpine)?", rabbitmq["image"]), rabbitmq["image"]
    assert {5672, 15672} <= container_ports(rabbitmq)
    test = rabbitmq["healthcheck"]["test"]
    command = " ".join(test) if isinstance(test, list) else test
    assert "rabbitmq-diagnostics" in command
    assert "ping" in command or "check_port_connectivity" in command
    mounts = volume_mounts(rabbitmq)
    data_volumes = [src for src, dst in mounts.items() if dst == "/var/lib/rabbitmq"]
    assert data_volumes, "the broker's data must live in a volume"
    assert data_volumes[0] in compose.get("volumes", {}), "the broker's data volume must be a named volume"


def test_worker_waits_for_a_healthy_broker(services):
    depends_on = services["worker"]["depends_on"]
    assert isinstance(depends_on, dict), "depends_on needs the long form to state a condition"
    assert depends_on["rabbitmq"]["condition"] == "service_healthy"


def test_worker_is_scalable(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale worker=N"
    for entry in worker.get("ports", []):
        published = entry.get("published") if isinstance(entry, dict) else (
            str(entry).rsplit(":", 1)[0] if ":" in str(entry) else None
        )
        assert not published, f"a fixed host port prevents --scale worker=N: {entry}"
    assert "profiles" not in worker, "the worker starts with a plain `docker compose up`"
    command = worker.get("command")
    command = " ".join(command) if isinstance(command, list) else str(command)
    assert "worker" in command
    assert "rabbitmq" in environment(worker)["AMQP_URL"]


@pytest.mark.parametrize("name", ["producer", "consumer"])
def test_participant_tools_share_the_key_store(compose, services, name):
    service = services[name]
    assert "tools" in service.get("profiles", []), f"{name} runs on demand (profile tools)"
    key_store = environment(service)["KEY_STORE"]
    mounts = volume_mounts(service)
    assert mounts.get("keystore") == key_store, f"{name} must mount the keystore volume at KEY_STORE"
    assert "keystore" in compose["volumes"]
    assert "rabbitmq" in environment(service)["AMQP_URL"]


def test_producer_and_consumer_see_the_same_keys(services):
    assert environment(services["producer"])["KEY_STORE"] == environment(services["consumer"])["KEY_STORE"]


def test_worker_does_not_mount_private_keys(services):
    assert "keystore" not in volume_mounts(services["worker"]), "workers never need private keys"


@pytest.mark.parametrize("name", BINARIES)
def test_services_are_built_from_an_existing_dockerfile(services, name):
    dockerfile = dockerfile_of(services[name])
    assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    text = dockerfile.read_text(encoding="utf-8")
    for binary in BINARIES:
        assert re.search(rf"cargo build [^\n]*-p {binary}\b", text), f"{dockerfile} does not build {binary}"


def dockerfile_text() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_is_multi_stage_and_names_the_binaries():
    text = dockerfile_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2, "builder and runtime stages expected"
    assert stages[-1][0].startswith("debian:bookworm-slim"), "the runtime stage is debian:bookworm-slim"
    assert re.search(r"cargo build --release --locked -p producer -p worker -p consumer", text)
    copied = re.search(r"^COPY --from=\S+ (.+) /usr/local/bin/", text, re.MULTILINE)
    assert copied, "the binaries go to /usr/local/bin"
    for binary in BINARIES:
        assert re.search(rf"\b{binary}\b", copied.group(1)), f"{binary} is not copied into the image"


def test_dockerfile_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", dockerfile_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the runtime stage must switch to a non-root user"


def test_dockerfile_compiler_is_not_older_than_the_workspace_rust_version():
    rust_version = re.search(r"^ARG RUST_VERSION=(\d+)\.(\d+)", dockerfile_text(), re.MULTILINE)
    assert rust_version, "the builder's Rust version is an ARG RUST_VERSION=X.Y"
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    minimum = workspace["workspace"]["package"]["rust-version"].split(".")
    assert tuple(map(int, rust_version.groups())) >= (int(minimum[0]), int(minimum[1]))


def test_dockerignore_keeps_build_output_out_of_the_context():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "/target" in ignored or "target" in ignored
    assert "/.git" in ignored or ".git" in ignored


def test_broker_listens_with_tls_and_services_verify_it(services):
    rabbitmq = services["rabbitmq"]
    assert 5671 in container_ports(rabbitmq), "the broker's TLS listener (5671) must be published"
    tls_mounts = [str(v) for v in rabbitmq.get("volumes", []) if "/etc/rabbitmq/" in str(v)]
    for name in ("20-tls.conf", "ca.pem", "server.pem", "server.key"):
        mount = next((m for m in tls_mounts if name in m), None)
        assert mount, f"the broker must mount {name}"
        assert mount.endswith(":ro"), f"{name} must be mounted read-only"
    conf = (ROOT / "config" / "rabbitmq-tls.conf").read_text(encoding="utf-8")
    assert "listeners.ssl.default = 5671" in conf
    for name in ("worker", "producer", "consumer"):
        env = environment(services[name])
        assert env["AMQP_URL"].startswith("amqps://"), f"{name} must connect with TLS"
        ca_file = env["PIPELINE__BROKER__TLS__CA_FILE"]
        assert any(
            str(v).endswith(f":{ca_file}:ro") for v in services[name].get("volumes", [])
        ), f"{name} must mount its CA file read-only at {ca_file}"


def test_no_guest_where_the_page_is_served_and_web_stomp_stays_internal(services):
    """The page's proxy reaches Web-STOMP, whose CONNECT without credentials logs in as guest:
    the broker must start with another administrator, and 15674 must not be published."""
    broker = services["rabbitmq"]
    env = environment(broker)
    assert env["RABBITMQ_DEFAULT_USER"] != "guest" and "guest" not in env["RABBITMQ_DEFAULT_USER"]
    assert "BROKER_ADMIN_PASSWORD:?" in env["RABBITMQ_DEFAULT_PASS"], "the admin password is required, not defaulted"
    assert not any("15674" in str(p) for p in broker.get("ports", [])), "Web-STOMP is reached through the web service only"
    plugins = (ROOT / "config" / "rabbitmq-enabled-plugins").read_text(encoding="utf-8")
    assert "rabbitmq_web_stomp" in plugins and "rabbitmq_management" in plugins
    assert any(v.endswith("/etc/rabbitmq/enabled_plugins:ro") for v in broker["volumes"])
    for name, service in services.items():
        url = environment(service).get("AMQP_URL", "")
        assert "guest" not in url, f"{name} must not connect as guest"
    web = services["web"]
    assert any("web/nginx/compose.conf" in v for v in web["volumes"])
    assert any(str(p).startswith("8080") for p in web["ports"])
