"""Building, starting and exporting the Serve app.

- :func:`build_app` composes the deployment graph from a :class:`~cultura.config.CulturaConfig` with
  ``.bind()`` (Serve turns every bound deployment passed as an argument into a DeploymentHandle).
- ``cultura.serve.app:app_builder`` is the import path for ``serve run`` / ``serve deploy`` / a
  KubeRay RayService: it takes ``args`` ``{"config": <path or mapping>, "overrides": {dotted: value}}``.
- :func:`serve_config` writes the Serve config file (``cultura serve --write-config``) that
  ``serve deploy`` and a RayService's ``serveConfigV2`` accept.
- :func:`start` runs the app on the local Ray (or the configured cluster) and returns its URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cultura.actors.agents import agent_placement_fixes
from cultura.config import CulturaConfig, TransformersEngineConfig, load_config
from cultura.data.hofstede import CONTINENTS
from cultura.errors import ConfigError
from cultura.palette.adapters import continent_adapters
from cultura.placement import Demand, check_placement, cluster_nodes
from cultura.ray_utils import init_ray
from cultura.serve.catalog import culture_adapters, listed_models

IMPORT_PATH = "cultura.serve.app:app_builder"
BUILDER_ARGS = ("config", "config_path", "overrides")
PUSH_INTERVAL_VARS = ("RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S",
                      "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S")


def continent_deployment(continent: str) -> str:
    """The Serve deployment name of a continent agent: ``ContinentAgent_Asia``."""
    return f"ContinentAgent_{continent}"


def api_key(config: Any) -> str | None:
    """The API key: ``serve.api_key``, else the environment variable ``serve.api_key_env``, else None."""
    key = config.serve.api_key or os.environ.get(config.serve.api_key_env or "", "")
    return key.strip() or None


def _merged(base: Any, override: Any) -> Any:
    """``base`` with the fields ``override`` sets explicitly."""
    return base.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


def deployment_options(config: Any, section: Any, cpus: float = 0.0, gpus: float = 0.0) -> dict[str, Any]:
    """Serve options of one deployment: replicas or autoscaling, concurrency, resources.

    ``cpus``/``gpus`` are the derived defaults, used where the section leaves them unset.
    """
    s = config.serve
    actor: dict[str, Any] = {"num_cpus": section.num_cpus if section.num_cpus is not None else cpus,
                             "num_gpus": section.num_gpus if section.num_gpus is not None else gpus}
    if s.metrics_push_interval_s is not None:
        actor["runtime_env"] = {"env_vars": {v: str(s.metrics_push_interval_s) for v in PUSH_INTERVAL_VARS}}
    options: dict[str, Any] = {"max_ongoing_requests": section.max_ongoing_requests, "ray_actor_options": actor,
                               "health_check_period_s": s.health_check_period_s,
                               "graceful_shutdown_timeout_s": 5.0}
    if section.autoscaling is not None:
        options["autoscaling_config"] = section.autoscaling.model_dump(exclude_none=True)
    else:
        options["num_replicas"] = section.num_replicas
    return options


def _threads(options: dict[str, Any]) -> int | None:
    cpus = options["ray_actor_options"]["num_cpus"]
    return max(1, int(cpus)) if cpus else None


def deployment_plan(config: Any) -> dict[str, dict[str, Any]]:
    """Deployment name -> Serve options (replicas, resources) of every deployment of the app.

    Agents take ``agent_resources`` with ``dedicated`` placement (each replica owns an engine), the
    Engine deployment ``engine_resources``; sections of ``config.serve`` override either.
    """
    s = config.serve
    dedicated = config.placement == "dedicated"
    agent_cpus, agent_gpus = ((config.agent_resources.num_cpus, config.agent_resources.num_gpus)
                              if dedicated else (0.0, 0.0))
    plan = {"Engine": deployment_options(config, s.engine, config.engine_resources.num_cpus,
                                         config.engine_resources.num_gpus),
            "Gate": deployment_options(config, s.gate)}
    for continent in CONTINENTS:
        section = _merged(s.continent, s.continents[continent]) if continent in s.continents else s.continent
        plan[continent_deployment(continent)] = deployment_options(config, section, agent_cpus, agent_gpus)
    plan["MetaAgent"] = deployment_options(config, s.meta)
    plan["CultureAgent"] = deployment_options(config, s.culture, agent_cpus, agent_gpus)
    plan["Ingress"] = deployment_options(config, s.ingress)
    return plan


def starting_replicas(options: dict[str, Any]) -> int:
    """How many replicas a deployment with these Serve options starts with."""
    auto = options.get("autoscaling_config")
    if auto is None:
        return options["num_replicas"]
    initial = auto.get("initial_replicas")
    return initial if initial is not None else auto["min_replicas"]


def check_serve_placement(config: Any) -> None:
    """Fail at once when the app's starting replicas cannot be placed on the cluster (naming the
    shortfall and the fixes); warn when they wait for the autoscaler."""
    demands, others, agents = [], [], 0
    for name, options in deployment_plan(config).items():
        actor = options["ray_actor_options"]
        replicas = starting_replicas(options)
        demands.append(Demand(f"{name} replicas", replicas, {"CPU": actor["num_cpus"], "GPU": actor["num_gpus"]}))
        if name.startswith(("ContinentAgent_", "CultureAgent")):
            agents += replicas
        else:
            others.append(demands[-1])
    fixes = agent_placement_fixes(config, agents, cluster_nodes(), "lower serve.continent.num_replicas or "
                                  "serve.culture.num_replicas (or their autoscaling min_replicas)", others)
    check_placement("this Serve app", demands, fixes)


def build_app(config: Any) -> Any:
    """The Serve application: Ingress -> Gate, MetaAgent -> ContinentAgent x5, CultureAgent, Engine.

    Adapters are resolved here (a missing or malformed adapter is a ConfigError before anything
    starts). See :mod:`cultura.serve.deployments` for the placement and multiplexing choices.
    """
    from cultura.serve.deployments import ContinentAgent, CultureAgent, EngineDeployment, Gate, MetaAgent
    from cultura.serve.ingress import Ingress, IngressSettings, hash_key

    s, p = config.serve, config.palette
    if p.blend == "weighted-merge":
        raise ConfigError("palette.blend: the Serve app blends with 'aggregate' or 'select'; 'weighted-merge' "
                          "runs offline only (`cultura palette --blend weighted-merge`)")
    own_engine = config.engine if config.placement == "dedicated" else None
    continents_with_adapter = continent_adapters(config)
    cultures_with_adapter = culture_adapters(config)
    plan = deployment_plan(config)

    engine_opts = plan["Engine"]
    shared_engine = config.engine
    if isinstance(shared_engine, TransformersEngineConfig):  # vLLM and a remote server batch on their own
        shared_engine = shared_engine.model_copy(update={"batch_wait_ms": s.engine_batch_wait_ms})
    engine = EngineDeployment.options(**engine_opts).bind(shared_engine, _threads(engine_opts))
    gate = Gate.options(**plan["Gate"]).bind(p)
    agents = {}
    for continent in CONTINENTS:
        opts = plan[continent_deployment(continent)]
        agents[continent] = ContinentAgent.options(name=continent_deployment(continent), **opts).bind(
            continent, continents_with_adapter.get(continent), engine, own_engine, _threads(opts))
    meta = MetaAgent.options(**plan["MetaAgent"]).bind(agents, engine, p.blend, s.draft_timeout_s)
    culture_opts = plan["CultureAgent"]
    culture = CultureAgent.options(**culture_opts).bind(cultures_with_adapter, engine, own_engine,
                                                        _threads(culture_opts), s.culture_models_per_replica)
    key = api_key(config)
    settings = IngressSettings(
        api_key_sha256=hash_key(key) if key else None, max_prompt_chars=s.max_prompt_chars,
        max_prompt_tokens=s.max_prompt_tokens, max_messages=s.max_messages, max_tokens_limit=s.max_tokens_limit, request_timeout_s=s.request_timeout_s,
        default_max_tokens=config.sampling.max_tokens, palette_max_tokens=p.max_tokens,
        temperature=config.sampling.temperature, top_p=config.sampling.top_p, seed=config.sampling.seed,
        repetition_penalty=config.sampling.repetition_penalty,
        no_repeat_ngram_size=config.sampling.no_repeat_ngram_size,
        language_candidates=config.sampling.language_candidates,
        draft_temperature=p.temperature, meta_temperature=p.meta_temperature, blend=p.blend,
        models=tuple(listed_models(list(cultures_with_adapter))),
        adapters=(*((f"continent/{c}", a) for c, a in continents_with_adapter.items()),
                  *((f"culture/{c}", a) for c, a in cultures_with_adapter.items())))
    return Ingress.options(**plan["Ingress"]).bind(gate, meta, agents, culture, engine, settings)


def app_builder(args: dict[str, Any] | None = None) -> Any:
    """The import-path entry for ``serve run`` / ``serve deploy``: ``args`` may hold ``config`` (a YAML
    path or the configuration as a mapping; ``config_path`` is the same as a path) and ``overrides``
    (dotted keys to values)."""
    args = dict(args or {})
    unknown = set(args) - set(BUILDER_ARGS)
    if unknown:
        raise ConfigError(f"app_builder args: unknown keys {', '.join(sorted(unknown))}; use {', '.join(BUILDER_ARGS)}")
    if "config" in args and "config_path" in args:
        raise ConfigError("app_builder args: give 'config' or 'config_path', not both")
    source, overrides = args.get("config", args.get("config_path")), args.get("overrides") or {}
    if isinstance(source, dict):
        config = CulturaConfig.model_validate(source)
        if overrides:
            tree = config.model_dump()
            from cultura.config import set_dotted

            for dotted, value in overrides.items():
                set_dotted(tree, dotted, value)
            config = CulturaConfig.model_validate(tree)
    else:
        config = load_config(source, overrides)
    return build_app(config)


def serve_config(config: Any) -> dict[str, Any]:
    """The Serve config file (the format ``serve deploy`` and a RayService's ``serveConfigV2`` take)
    that runs this configuration through :func:`app_builder`. The API key itself is never written:
    the app reads it from ``serve.api_key_env`` where it runs."""
    s = config.serve
    tree = config.model_dump(mode="json", exclude={"serve": {"api_key"}})
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": s.host, "port": s.port, "request_timeout_s": s.request_timeout_s + 10},
        "applications": [{"name": s.app_name, "route_prefix": "/", "import_path": IMPORT_PATH,
                          "args": {"config": tree}}],
    }


def write_serve_config(config: Any, path: str | os.PathLike) -> Path:
    """Write :func:`serve_config` as YAML to ``path`` (atomically) and return the path."""
    import yaml

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(serve_config(config), sort_keys=False), encoding="utf-8")
    os.replace(tmp, out)
    return out


def start(config: Any) -> str:
    """Start Serve (HTTP on ``serve.host:serve.port``) and run the app without blocking; returns the
    base URL of the OpenAI API (``http://host:port/v1``)."""
    from ray import serve

    s = config.serve
    app = build_app(config)  # resolves adapters and validates before Ray starts anything
    init_ray(config)
    check_serve_placement(config)
    serve.start(http_options={"host": s.host, "port": s.port, "request_timeout_s": s.request_timeout_s + 10})
    serve.run(app, name=s.app_name, route_prefix="/", blocking=False)
    return f"http://{s.host}:{s.port}/v1"
