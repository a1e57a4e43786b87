"""Agent actors: a persona plus a way to reach an engine, stateless about dialogues.

Placement (``config.placement``):

- ``shared``: one engine actor hosts the model and every adapter; agents are light actors that
  forward to it, so calls from all agents batch together (the default on one small machine).
- ``dedicated``: every agent owns its engine and its resources (``num_gpus=1`` per agent on a cluster).

The dialogue travels with each call, so an agent restarted by Ray loses nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from cultura.actors.engine_actor import start_engine_actor
from cultura.engines.base import ChatRequest, Completion, Failure, Message, OptionScores, ScoreRequest, score_each
from cultura.personas import Persona
from cultura.placement import Demand, pack
from cultura.sampling import SamplingParams

SHARED_ENGINE_NAME = "cultura-shared-engine"


@dataclass(frozen=True)
class AgentCompletion(Completion):
    """A completion plus the Ray node the agent that produced it ran on (None outside Ray)."""

    node_id: str | None = None


def current_node_id() -> str | None:
    """The id of the Ray node this process runs on, or None when it is not part of a Ray cluster."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class Agent:
    """One persona's agent; wrapped as a Ray actor by :func:`start_agents`."""

    def __init__(self, persona: Persona, engine_config: Any = None, engine_handle: Any = None,
                 num_threads: int | None = None):
        self.persona = persona
        self._handle = engine_handle  # an engine actor handle, or its name (looked up on first use)
        self._engine = None
        if engine_handle is None:
            from cultura.engines import create_engine

            self._engine = create_engine(engine_config, num_threads=num_threads)
        self.calls = 0
        self.node_id = current_node_id()  # a restarted actor may come back on another node

    def info(self) -> dict[str, Any]:
        """The persona, where its engine lives and the Ray node the agent runs on."""
        return {"key": self.persona.key, "name": self.persona.name, "role": self.persona.role,
                "placement": "dedicated" if self._engine else "shared", "adapter": self.persona.adapter,
                "node_id": self.node_id}

    async def respond(self, conversations: Sequence[Sequence[Message]],
                      sampling: SamplingParams | Sequence[SamplingParams],
                      system_prompts: Sequence[str | None] | None = None) -> list[AgentCompletion]:
        """Answer each conversation (user/assistant turns) as this persona, in one batch.

        ``sampling`` is one for all, or one per conversation (the Palette's answer languages differ
        by prompt). ``system_prompts[i]``, when given, replaces the persona's system prompt for
        conversation i (for example the persona plus a seed-specific self-calibration). Each
        completion names the node this agent ran on.
        """
        samplings = [sampling] * len(conversations) if isinstance(sampling, SamplingParams) else list(sampling)
        requests = []
        for i, conv in enumerate(conversations):
            system = (system_prompts[i] if system_prompts and system_prompts[i] else self.persona.system_prompt)
            messages = [{"role": "system", "content": system}, *conv]
            requests.append(ChatRequest(tuple(messages), samplings[i], self.persona.adapter))
        self.calls += 1
        if self._engine is not None:
            completions = await self._engine.generate(requests)
        else:
            completions = await self._engine_actor().generate.remote(requests)
        return [AgentCompletion(**{f.name: getattr(c, f.name) for f in fields(Completion)}, node_id=self.node_id)
                for c in completions]

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        """Log-probability of each option as this persona's answer (persona system prompt first), with
        the valid mass (:class:`~cultura.engines.base.OptionScores`)."""
        full = [{"role": "system", "content": self.persona.system_prompt}, *messages]
        if self._engine is not None:
            return await self._engine.score_options(full, options, self.persona.adapter)
        return await self._engine_actor().score_options.remote(full, options, self.persona.adapter)

    async def score_each(self, items: Sequence[tuple[Sequence[Message], Sequence[str]]]) -> list[OptionScores | Failure]:
        """:meth:`score_options` for many ``(messages, options)`` items in one call, each failing alone
        (a :class:`~cultura.engines.base.Failure` in its place)."""
        requests = [ScoreRequest.of([{"role": "system", "content": self.persona.system_prompt}, *messages], options,
                                    self.persona.adapter) for messages, options in items]
        if self._engine is not None:
            return await score_each(self._engine, requests)
        return await self._engine_actor().score_each.remote(requests)

    def _engine_actor(self) -> Any:
        """The shared engine actor; a name given instead of a handle is looked up once."""
        if isinstance(self._handle, str):
            import ray

            self._handle = ray.get_actor(self._handle)
        return self._handle


def agent_actor_options(config: Any) -> dict[str, Any]:
    """Ray options for an agent actor: restarts and retries, resources by placement. Dedicated agents are
    spread over the cluster's nodes (Ray's default packs a node first, so concurrent starts could put
    every agent, and its model, on one node while another idles)."""
    dedicated = config.placement == "dedicated"
    res = config.agent_resources
    return dict(
        num_cpus=res.num_cpus if dedicated else 0,
        num_gpus=res.num_gpus if dedicated else 0,
        scheduling_strategy="SPREAD" if dedicated else "DEFAULT",
        max_concurrency=1024,
        max_restarts=3,
        # a call in flight when the actor's node is lost waits for the restarted actor, however long
        # the restart takes (loading the model on another node); calls are stateless, so a retry is safe
        max_task_retries=-1,
    )


def agent_demands(config: Any, n_agents: int, engine_given: bool = False) -> list[Any]:
    """What :func:`start_agents` asks Ray for (:class:`~cultura.placement.Demand` list): the agents, and
    with ``shared`` placement the engine actor they forward to (unless ``engine_given``)."""
    options = agent_actor_options(config)
    dedicated = config.placement == "dedicated"
    demands = [Demand("dedicated agents" if dedicated else "agents", n_agents,
                      {"CPU": options["num_cpus"], "GPU": options["num_gpus"]})]
    if not dedicated and not engine_given:
        res = config.engine_resources
        demands.append(Demand("shared engine actor", 1, {"CPU": res.num_cpus, "GPU": res.num_gpus}))
    return demands


def agent_placement_fixes(config: Any, n_agents: int, nodes: Sequence[dict[str, float]], how_to_fewer: str,
                          others: Sequence[Any] = ()) -> list[str]:
    """The changes that shrink what ``n_agents`` agents ask for, in configuration terms: fewer agents
    (``how_to_fewer`` says how in the stage's flags), fractional GPUs (a share checked to fit ``nodes``
    beside the ``others`` demands), shared placement."""
    engine = Demand("", 1, {"CPU": config.engine_resources.num_cpus, "GPU": config.engine_resources.num_gpus})
    if config.placement == "shared":
        return [f"a smaller shared engine: engine_resources (now {engine.per_actor()})"]
    res = config.agent_resources
    fixes = [f"fewer agents: this run starts {n_agents}; {how_to_fewer}"]
    for k in range(2, 9) if res.num_gpus > 0 else ():
        share = int(100 * res.num_gpus / k) / 100
        if share > 0 and not pack([Demand("", n_agents, {"CPU": res.num_cpus, "GPU": share}), *others], nodes):
            fixes.append(f"fractional GPUs: agent_resources.num_gpus: {share:g} fits the {n_agents} agents on this "
                         f"cluster ({k} agents share a GPU, when the model fits {k} times in its memory)")
            break
    shared = f"shared placement: placement: shared (one engine actor of {engine.per_actor()} serves every agent"
    if pack([engine, *others], nodes):
        biggest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
        largest = Demand("", 1, {k: biggest.get(k, 0.0) for k in ("CPU", "GPU")})
        shared += f"; engine_resources must then fit one node: the largest has {largest.per_actor()}"
    fixes.append(shared + ")")
    return fixes


@dataclass
class AgentPool:
    """Agent actors by persona key, plus the shared engine actor they forward to (if any).

    ``names`` holds each agent's actor name (for :func:`ray.get_actor`): handing names rather than
    handles to other actors' constructors keeps Ray's restart warning away.
    """

    agents: dict[str, Any]
    engine: Any = None
    names: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.agents[key]

    def stop(self) -> None:
        """Kill every agent and the shared engine."""
        stop_actors(list(self.agents.values()) + ([self.engine] if self.engine is not None else []))


def start_agents(personas: Sequence[Persona], config: Any, engine_handle: Any = None) -> AgentPool:
    """Start one agent actor per persona.

    With ``shared`` placement the agents forward to ``engine_handle``, or to an engine actor started
    here from ``config.engine`` and ``config.engine_resources`` (then owned by the returned pool).
    """
    import ray

    actor_cls = ray.remote(Agent)
    options = agent_actor_options(config)
    owned_engine = None
    engine_ref = engine_handle
    run = uuid.uuid4().hex[:12]
    if config.placement == "shared" and engine_handle is None:
        # Agents get the engine by (unique) name: an actor handle among an actor's constructor
        # arguments makes Ray warn that a restart could fail once the handle goes out of scope.
        engine_ref = f"{SHARED_ENGINE_NAME}-{run}"
        engine_handle = owned_engine = start_engine_actor(config.engine, config.engine_resources, name=engine_ref)
    threads = max(1, int(config.agent_resources.num_cpus)) if config.agent_resources.num_cpus else None
    agents, names = {}, {}
    for persona in personas:
        names[persona.key] = f"cultura-agent-{run}-{persona.key}"
        actor = actor_cls.options(**options, name=names[persona.key])
        if config.placement == "shared":
            agents[persona.key] = actor.remote(persona, engine_handle=engine_ref)
        else:
            agents[persona.key] = actor.remote(persona, config.engine, num_threads=threads)
    return AgentPool(agents, owned_engine, names)


def stop_actors(handles: Sequence[Any]) -> None:
    """Kill actors, ignoring ones already gone."""
    import ray

    for handle in handles:
        try:
            ray.kill(handle)
        except Exception:  # already dead or never started
            pass
