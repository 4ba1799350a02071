"""deploy/: Kubernetes manifests, Spark defaults, the Grafana dashboard and the Prometheus rules.

No cluster and no network: every manifest is validated against the JSON Schemas vendored in
deploy/k8s/schemas/ (hand-written subsets of the Kubernetes and Spark operator APIs, with
``additionalProperties: false`` so a misspelt field fails), and cross-checked against the
project itself: env var names are real settings, the Spark apps run the same entry points and
Spark configuration as deploy/spark/submit.sh, the monitoring uses only exported metrics.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from conf.settings import ENV_PREFIX, Settings, load_settings
from tests.support import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = K8S / "schemas"
SPARK_DEFAULTS = DEPLOY / "spark" / "spark-defaults.conf"
SUBMIT = DEPLOY / "spark" / "submit.sh"
DASHBOARD = DEPLOY / "monitoring" / "grafana-dashboard.json"
RULES = DEPLOY / "monitoring" / "prometheus-rules.yaml"
OPERATIONS = REPO / "docs" / "operations.md"

SPARK_API = "sparkoperator.k8s.io/v1beta2"
SPECIAL_ENV = {"AEGIS_HOME", "AEGIS_PROFILE"}  # read by load_settings itself, not AEGIS_<SECTION>__<KEY>
# spark-defaults.conf keys sized per deployment (driver/executor specs, profiles): may differ in k8s.
SIZING_KEYS = {"spark.driver.memory", "spark.executor.cores", "spark.executor.memory", "spark.cores.max",
               "spark.sql.shuffle.partitions", "spark.default.parallelism"}
# Metrics the stream and the API export, with their labels (a histogram's buckets also have `le`).
METRICS: dict[str, set[str]] = {
    "aegis_stream_input_rows_per_second": {"query"},
    "aegis_stream_processed_rows_per_second": {"query"},
    "aegis_stream_batch_duration_seconds": {"query"},
    "aegis_stream_state_rows": {"query"},
    "aegis_stream_state_memory_bytes": {"query"},
    "aegis_stream_scored_total": set(),
    "aegis_stream_late_total": set(),
    "aegis_stream_ingested_total": set(),
    "aegis_stream_labels_total": set(),
    "aegis_stream_quarantined_total": set(),
    "aegis_stream_decisions_total": {"decision"},
    "aegis_stream_score_latency_seconds": {"quantile"},
    "aegis_api_requests_total": {"route", "status"},
    "aegis_api_request_duration_seconds_bucket": {"route", "le"},
    "aegis_api_store_up": {"check"},
    "aegis_serving_sync_lag_seconds_bucket": {"le"},
}
TARGET_LABELS = {"job", "instance", "namespace", "pod"}  # added by Prometheus at scrape time
PROMQL_FUNCTIONS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "rate", "irate", "increase",
    "delta", "deriv", "absent", "absent_over_time", "changes", "histogram_quantile", "clamp_min", "clamp_max",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "vector", "scalar", "time", "abs",
}
PROMQL_KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
                   "offset"}


# --- loading -----------------------------------------------------------------------------------

def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((f"{path.name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return docs


DOCS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def _schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    path = SCHEMAS / f"{doc['apiVersion'].replace('/', '.')}.{doc['kind']}.json"
    assert path.is_file(), f"no vendored schema for {doc['apiVersion']} {doc['kind']} ({path.name})"
    return json.loads(path.read_text())


def _spark_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, SparkApplicationSpec) of every SparkApplication and ScheduledSparkApplication template."""
    for doc in _of_kind("SparkApplication"):
        yield doc["metadata"]["name"], doc["spec"]
    for doc in _of_kind("ScheduledSparkApplication"):
        yield doc["metadata"]["name"], doc["spec"]["template"]


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in _of_kind("Deployment"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def _containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container-like spec: Deployment containers, Spark drivers and executors."""
    for name, pod in _pod_specs():
        for container in pod["containers"]:
            yield f"{name}/{container['name']}", container
    for name, spec in _spark_specs():
        yield f"{name}/driver", spec["driver"]
        yield f"{name}/executor", spec["executor"]


def _spark_defaults() -> dict[str, str]:
    conf = {}
    for line in SPARK_DEFAULTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key] = value.strip()
    return conf


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom sources, then env (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_one("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        if "secretRef" in source:
            env.update(_one("Secret", source["secretRef"]["name"]).get("stringData", {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
            data = _one(kind, ref["name"]).get("stringData" if kind == "Secret" else "data", {})
            assert ref["key"] in data, f"{var['name']}: {kind}/{ref['name']} has no key {ref['key']}"
            env[var["name"]] = data[ref["key"]]
    return env


def _test_value(name: str, value: str) -> str:
    """Secret placeholders replaced by a value a real deployment would hold."""
    if "REPLACE_ME" in value:
        assert name == "AEGIS_SECURITY__CARD_HASH_KEY", f"{name}: unexpected placeholder"
        return "9f" * 32
    return value


# --- schemas -----------------------------------------------------------------------------------

def test_vendored_schemas_are_valid_json_schemas() -> None:
    ids = set()
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        ids.add(schema["$id"])
    assert len(ids) == len(list(SCHEMAS.glob("*.json")))


@pytest.mark.parametrize(("where", "doc"), DOCS, ids=[w for w, _ in DOCS])
def test_manifest_matches_its_schema(where: str, doc: dict[str, Any]) -> None:
    validator = Draft202012Validator(_schema_for(doc), registry=_registry())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{where} at {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schemas_catch_a_misspelt_field() -> None:
    deployment = json.loads(json.dumps(_one("Deployment", "aegis-api")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    validator = Draft202012Validator(_schema_for(deployment), registry=_registry())
    assert any("readinesProbe" in e.message for e in validator.iter_errors(deployment))
    app = json.loads(json.dumps(_of_kind("SparkApplication")[0]))
    app["spec"]["restartPolicy"]["onFailureRetry"] = 3
    validator = Draft202012Validator(_schema_for(app), registry=_registry())
    assert any("onFailureRetry" in e.message for e in validator.iter_errors(app))


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in _manifest_files()]
    assert {doc["metadata"].get("namespace") for doc in _of_kind("Namespace")} == {None}
    namespaces = {doc["metadata"].get("namespace") for _, doc in DOCS if doc["kind"] != "Namespace"}
    assert namespaces == {kustomization["namespace"]} == {doc["metadata"]["name"] for doc in _of_kind("Namespace")}


# --- references between objects ---------------------------------------------------------------

def test_references_resolve() -> None:
    for _, container in _containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                _one("ConfigMap", source["configMapRef"]["name"])
            if "secretRef" in source:
                _one("Secret", source["secretRef"]["name"])
        _env_of(container)  # secretKeyRef / configMapKeyRef keys exist
    volumes = [v for _, pod in _pod_specs() for v in pod.get("volumes", [])]
    volumes += [v for _, spec in _spark_specs() for v in spec.get("volumes", [])]
    for volume in volumes:
        if "persistentVolumeClaim" in volume:
            _one("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    for _, pod in _pod_specs():
        _one("ServiceAccount", pod["serviceAccountName"])
        names = {v["name"] for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            assert {m["name"] for m in container.get("volumeMounts", [])} <= names
    for name, spec in _spark_specs():
        _one("ServiceAccount", spec["driver"]["serviceAccount"])
        names = {v["name"] for v in spec.get("volumes", [])}
        for role in ("driver", "executor"):
            assert {m["name"] for m in spec[role].get("volumeMounts", [])} <= names, (name, role)
    for binding in _of_kind("RoleBinding"):
        _one(binding["roleRef"]["kind"], binding["roleRef"]["name"])
        for subject in binding["subjects"]:
            _one(subject["kind"], subject["name"])


def test_services_select_pods_and_named_ports() -> None:
    pods: list[tuple[dict[str, str], set[str]]] = []
    for doc in _of_kind("Deployment"):
        template = doc["spec"]["template"]
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        pods.append((template["metadata"]["labels"], ports))
        assert doc["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    for _, spec in _spark_specs():
        pods.append((spec["driver"].get("labels", {}), {p["name"] for p in spec["driver"].get("ports", [])}))
    for service in _of_kind("Service"):
        selector = service["spec"]["selector"]
        matched = [ports for labels, ports in pods if selector.items() <= labels.items()]
        assert matched, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str):
                assert all(port["targetPort"] in ports for ports in matched), (service["metadata"]["name"], port)


def test_api_deployment_probes_resources_and_autoscaling() -> None:
    deployment = _one("Deployment", "aegis-api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys() and "memory" in resources["limits"]
    settings = load_settings(environ={k: _test_value(k, v) for k, v in _env_of(container).items()})
    assert settings.api.host == "0.0.0.0"
    assert ports["http"] == settings.api.port
    args = container["args"]
    assert args[args.index("--port") + 1] == str(settings.api.port)
    module = importlib.util.find_spec(args[args.index("-m") + 1])  # the container runs a real entry point
    assert module is not None and module.origin is not None
    assert 'if __name__ == "__main__":' in Path(module.origin).read_text()
    hpa = _one("HorizontalPodAutoscaler", "aegis-api")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "aegis-api")
    assert 1 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    cpu_metrics = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu_metrics, "the HPA scales on CPU utilisation, which needs a CPU request"


def test_one_image_everywhere() -> None:
    images = {c["image"] for _, pod in _pod_specs() for c in pod["containers"]}
    images |= {spec["image"] for _, spec in _spark_specs()}
    assert len(images) == 1, images
    assert re.fullmatch(r"[\w./-]+:[\w.-]+", images.pop())


# --- settings ----------------------------------------------------------------------------------

def _settings_value(settings: Settings, name: str) -> Any:
    node: Any = settings
    for part in name[len(ENV_PREFIX):].lower().split("__"):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("where", [w for w, _ in _containers()])
def test_env_vars_are_real_settings(where: str) -> None:
    container = dict(_containers())[where]
    env = {k: _test_value(k, v) for k, v in _env_of(container).items()}
    assert env, f"{where} gets no settings"
    for name in env:
        assert name.startswith(ENV_PREFIX), f"{where}: {name} is not an Aegis setting"
        # AEGIS_KAFKA_BOOTSTRAP_SERVERS (one underscore) would be ignored silently by load_settings.
        assert name in SPECIAL_ENV or "__" in name, f"{where}: {name} needs __ between section and key"
    settings = load_settings(environ=env)  # unknown keys and invalid values raise ConfigError
    assert settings.profile == env["AEGIS_PROFILE"] == "cluster"
    for name, raw in env.items():
        if name in SPECIAL_ENV:
            continue
        value = _settings_value(settings, name)
        parsed = yaml.safe_load(raw)
        if isinstance(value, Path):
            assert value == Path(raw), (where, name)
        elif isinstance(value, list):
            assert [item.model_dump() for item in value] == parsed, (where, name)
        else:
            assert value == parsed, (where, name, value)
    assert settings.lakehouse_root.is_absolute() and str(settings.lakehouse_root).startswith("/data/")


def test_secrets_come_from_the_secret_only() -> None:
    secret = _one("Secret", "aegis-secrets")
    assert {"AEGIS_SECURITY__CARD_HASH_KEY", "AEGIS_API__KEYS"} <= secret["stringData"].keys()
    for config in _of_kind("ConfigMap"):
        assert not any(k.startswith(("AEGIS_SECURITY__", "AEGIS_API__KEYS")) for k in config.get("data", {}))
    for where, container in _containers():
        secrets = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
        assert secrets == ["aegis-secrets"], where


# --- Spark: same job, same configuration as deploy/spark/submit.sh -----------------------------

def test_spark_apps_run_the_submit_entry_points() -> None:
    submit = SUBMIT.read_text()
    assert 'main="$site/jobs/$job.py"' in submit and '"$main" --profile "$profile" "$@"' in submit
    jobs = {}
    for name, spec in _spark_specs():
        assert spec["type"] == "Python" and spec["mode"] == "cluster" and spec["pythonVersion"] == "3"
        match = re.fullmatch(r"local:///opt/aegis/jobs/(\w+)\.py", spec["mainApplicationFile"])
        assert match, spec["mainApplicationFile"]
        jobs[name] = match.group(1)
        # the same arguments submit.sh passes: --profile cluster first, job options after
        assert spec["arguments"][:2] == ["--profile", "cluster"], name
        assert spec["restartPolicy"]["type"] in ("OnFailure", "Always"), name
        assert spec["restartPolicy"].get("onFailureRetries", 0) > 0, name
        assert "log4j2.properties" in spec["driver"]["javaOptions"] and "log4j2.properties" in spec["executor"][
            "javaOptions"]
    assert jobs == {"aegis-stream": "stream", "aegis-nightly": "nightly"}
    case_line = next(line for line in submit.splitlines() if line.startswith("case \"$job\" in"))
    assert all(f" {job} " in case_line.replace("|", " ") for job in jobs.values()), case_line
    import pyspark

    for name, spec in _spark_specs():
        assert spec["sparkVersion"] == pyspark.__version__, name


@pytest.mark.parametrize("job", ["stream", "backfill", "train", "nightly"])
def test_submit_entry_points_exist(job: str) -> None:
    """Every job submit.sh accepts (and the SparkApplications run) has a spark-submit entry point."""
    assert (REPO / "jobs" / f"{job}.py").is_file()
    assert 'if __name__ == "__main__":' in (REPO / "jobs" / f"{job}.py").read_text()


def test_spark_conf_matches_spark_defaults() -> None:
    defaults = _spark_defaults()
    for required in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog",
                     "spark.sql.streaming.stateStore.providerClass",
                     "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled",
                     "spark.sql.session.timeZone", "spark.sql.execution.arrow.pyspark.enabled"):
        assert required in defaults, required
    from lakehouse.session import DELTA_CATALOG, DELTA_EXTENSION, ROCKSDB_PROVIDER

    assert defaults["spark.sql.extensions"] == DELTA_EXTENSION
    assert defaults["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert defaults["spark.sql.streaming.stateStore.providerClass"] == ROCKSDB_PROVIDER
    for name, spec in _spark_specs():
        conf = spec["sparkConf"]
        for key, value in defaults.items():
            if key not in SIZING_KEYS:
                assert conf.get(key) == value, f"{name}: sparkConf[{key!r}] = {conf.get(key)!r}, defaults: {value!r}"
        assert conf["spark.pyspark.python"] == conf["spark.pyspark.driver.python"] == "/opt/aegis/venv/bin/python"
        extra = set(conf) - set(defaults) - {"spark.pyspark.python", "spark.pyspark.driver.python"}
        assert not extra, f"{name}: sparkConf keys missing from spark-defaults.conf: {sorted(extra)}"


def test_stream_is_sized_to_its_partitions() -> None:
    spec = _one("SparkApplication", "aegis-stream")["spec"]
    settings = load_settings(environ={k: _test_value(k, v) for k, v in _env_of(spec["driver"]).items()})
    cores = spec["executor"]["instances"] * spec["executor"]["cores"]
    partitions = settings.kafka.topics.partitions
    assert partitions % cores == 0, f"{partitions} Kafka partitions over {cores} executor cores"
    assert settings.spark.shuffle_partitions % cores == 0
    assert settings.stream.metrics_port in {p["containerPort"] for p in spec["driver"]["ports"]}


def test_submit_script_options() -> None:
    text = SUBMIT.read_text()
    args = shlex.split(text.split("args=(", 1)[1].split("\n)", 1)[0], comments=True)
    for option in ("--master", "--deploy-mode", "--properties-file", "--jars", "--archives",
                   "--driver-java-options"):
        assert option in args, option
    assert "spark.pyspark.python=$python" in args and "spark.executorEnv.PYTHONPATH=aegis-pkg" in args
    assert "spark-defaults.conf" in args[args.index("--properties-file") + 1]


# --- monitoring --------------------------------------------------------------------------------

def _metric_uses(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels it is filtered or grouped by) for every metric in a PromQL expression.

    Unknown identifiers (not a metric, function or keyword) are returned with an empty label set
    and fail the caller's metric check.
    """
    uses: list[tuple[str, set[str]]] = []
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    grouped: set[str] = set()
    for match in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        grouped |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    for match in re.finditer(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", expr):
        labels = {m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", match.group(2))}
        uses.append((match.group(1) or "", labels))
    expr = re.sub(r"([A-Za-z_:][\w:]*)?\s*\{[^}]*\}", " ", expr)
    for match in re.finditer(r"\b([A-Za-z_:][\w:]*)\b(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if (call and name in PROMQL_FUNCTIONS) or name in PROMQL_KEYWORDS:
            continue
        uses.append((name, set()))
    return [(name, labels | grouped) for name, labels in uses]


def _check_expr(where: str, expr: str) -> None:
    uses = _metric_uses(expr)
    assert uses, f"{where}: no metric in {expr!r}"
    for name, _ in uses:
        assert name in METRICS, f"{where}: {name!r} is not an exported metric ({expr!r})"
    known = set().union(*(METRICS[name] for name, _ in uses)) | TARGET_LABELS
    for name, labels in uses:
        assert labels <= known, f"{where}: labels {sorted(labels - known)} not on {name} ({expr!r})"


def test_metric_parser_rejects_unknown_names() -> None:
    assert _metric_uses('sum by (route) (rate(aegis_api_requests_total{status=~"5.."}[5m]))') == [
        ("aegis_api_requests_total", {"status", "route"})]
    with pytest.raises(AssertionError):
        _check_expr("t", "rate(spark_streaming_lag[5m])")
    with pytest.raises(AssertionError):
        _check_expr("t", 'sum(aegis_stream_decisions_total{verdict="block"})')


def test_dashboard_panels_use_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("input", "processed", "batch duration", "latency", "quarantine", "state", "requests", "error"):
        assert topic in titles, topic
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            _check_expr(panel["title"], target["expr"])
            used |= {name for name, _ in _metric_uses(target["expr"])}
    assert used == set(METRICS), f"metrics without a panel: {sorted(set(METRICS) - used)}"


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_prometheus_rules() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    anchors = _anchors(OPERATIONS.read_text()) if OPERATIONS.is_file() else set()
    for name, rule in alerts.items():
        _check_expr(name, rule["expr"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{name}: runbook {anchor!r} not in {page}"
    exprs = {name: " ".join(rule["expr"].split()) for name, rule in alerts.items()}
    assert 'aegis_stream_score_latency_seconds{quantile="0.99"}) > 3' in exprs["AegisScoreLatencyHigh"]
    assert "> 0.05" in exprs["AegisApiLatencyHigh"] and "histogram_quantile(0.99" in exprs["AegisApiLatencyHigh"]
    assert 'status=~"5.."' in exprs["AegisApiErrors"]
    assert "aegis_stream_quarantined_total" in exprs["AegisQuarantineShareHigh"]
    assert {"AegisStreamStalled", "AegisStreamDown"} <= alerts.keys()
