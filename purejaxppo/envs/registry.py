"""Which environments a Config may name, checked without constructing one.

A Config is plain data: building it checks its env id against the registries (gymnax's
registered ids, purejaxppo's own ids below (`OWN_ENVS`, e.g. "StatelessCartPole-v1"), the
Brax names, "playground/<Name>" (MuJoCo Playground's registry), "<library>/<id>" for
Jumanji, XLand-MiniGrid and Craftax, "probe/<name>" for the probe environments of
`envs.probes` with their default arguments, a `brax.envs.Env` or Playground `MjxEnv`
instance, or an object with the gymnax Environment API)
but never builds the env (for Brax that would load the physics system). The env is
built later, in `core.setup.make_setup`.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from typing import Any

BRAX_PREFIX = "brax/"
BRAX_ENVS = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)
# Envs whose Brax implementation supports only the generalized pipeline.
GENERALIZED_ONLY = ("swimmer",)
ENV_API = ("reset", "step", "action_space", "default_params")
PROBE_PREFIX = "probe/"
# The classes of envs.probes, by name (listed here so that checking an id imports nothing).
PROBE_ENVS = (
    "ActionDependentReward",
    "ConstantReward",
    "ConstantRewardTimeLimit",
    "ContinuousTargetAction",
    "MaskedActions",
    "MemoryCue",
    "MultiDiscreteTarget",
    "ObservationDependentReward",
    "PixelActionReward",
    "PrivilegedReward",
    "TwoStepDiscount",
)

# Environment libraries behind `envs.libraries`: "<prefix><id>" -> (module, pip extra).
LIBRARY_PREFIXES: dict[str, tuple[str, str]] = {
    "jumanji/": ("jumanji", "jumanji"),
    "xminigrid/": ("xminigrid", "xminigrid"),
    "craftax/": ("craftax", "craftax"),
}
PLAYGROUND_PREFIX = "playground/"
PLAYGROUND_MODULE = "mujoco_playground"
CRAFTAX_ENVS = (
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
)

# purejaxppo's own envs under gymnax-style ids, consulted before gymnax's registry:
# id -> (module, class), built with no arguments (strings, so checking imports nothing).
OWN_ENVS: dict[str, tuple[str, str]] = {
    "StatelessCartPole-v1": ("purejaxppo.envs.pomdp", "StatelessCartPole"),
}


def is_own_id(env: Any) -> bool:
    """Whether `env` is one of purejaxppo's own env ids (`OWN_ENVS`)."""
    return isinstance(env, str) and env in OWN_ENVS


def library_prefix(env: Any) -> str | None:
    """The "<library>/" prefix of a library env id ("jumanji/Snake-v1"), else None."""
    if isinstance(env, str):
        for prefix in LIBRARY_PREFIXES:
            if env.startswith(prefix):
                return prefix
    return None


def library_env_names(prefix: str) -> tuple[str, ...]:
    """The ids a library registers (imports it; Craftax's four need no import)."""
    module = LIBRARY_PREFIXES[prefix][0]
    if module == "craftax":
        return CRAFTAX_ENVS
    library = importlib.import_module(module)
    return tuple(sorted(library.registered_environments()))


def check_library_id(env_id: str) -> None:
    """Raise ImportError naming the extra when the library is missing, ValueError
    naming close matches for an id it does not register."""
    prefix = library_prefix(env_id)
    module, extra = LIBRARY_PREFIXES[prefix]
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"Config.env={env_id!r} needs {module}: pip install 'purejaxppo[{extra}]'"
        )
    check_listed(env_id, prefix, library_env_names(prefix), module)


def is_playground_id(env: Any) -> bool:
    """Whether `env` is a "playground/<Name>" id."""
    return isinstance(env, str) and env.startswith(PLAYGROUND_PREFIX)


def is_playground_instance(env: Any) -> bool:
    """Whether `env` is a MuJoCo Playground `MjxEnv` instance (imports nothing)."""
    base = sys.modules.get(f"{PLAYGROUND_MODULE}._src.mjx_env")
    return base is not None and isinstance(env, base.MjxEnv)


def check_playground_instance(env: Any) -> None:
    """Raise ValueError for a Playground env inside Playground's training wrappers
    (`wrap_for_brax_training`: Brax's time limit and auto-reset)."""
    wrapper = sys.modules.get(f"{PLAYGROUND_MODULE}._src.wrapper")
    if wrapper is not None:
        refuse_wrapped(env, wrapper.Wrapper, "Playground")


def refuse_wrapped(env: Any, wrapper_class: type, library: str) -> None:
    """Raise ValueError naming the wrappers when `env` is inside `wrapper_class`es:
    training wrappers fold the time limit into `done` (truncations would read as
    terminations) and drop the final observation at auto-reset; purejaxppo applies
    both itself."""
    wrapped = []
    inner = env
    while isinstance(inner, wrapper_class) and hasattr(inner, "env"):
        wrapped.append(type(inner).__name__)
        inner = inner.env
    if wrapped:
        raise ValueError(
            f"Config.env={env!r}: a {library} env inside {', '.join(wrapped)}; pass the "
            "unwrapped env (env.unwrapped) and set Config.episode_length and "
            "Config.action_repeat instead (training wrappers merge time limits into done "
            "and drop the final observation at auto-reset)"
        )


def check_playground_id(env_id: str) -> None:
    """Raise ImportError naming the extra when Playground is missing, ValueError naming
    close matches for a name it does not register, and ValueError when the env needs
    the MuJoCo Menagerie's robot assets and they are not on this machine (Playground
    would try to clone them from GitHub inside `load`)."""
    if importlib.util.find_spec(PLAYGROUND_MODULE) is None:
        raise ImportError(
            f"Config.env={env_id!r} needs MuJoCo Playground: pip install 'purejaxppo[playground]'"
        )
    from mujoco_playground import registry

    name = check_listed(env_id, PLAYGROUND_PREFIX, tuple(registry.ALL_ENVS), "MuJoCo Playground")
    if name in registry.dm_control_suite.ALL_ENVS:
        return  # their assets ship inside the package
    from mujoco_playground._src import mjx_env

    if not mjx_env.MENAGERIE_PATH.exists():
        raise ValueError(
            f"Config.env={env_id!r}: needs the MuJoCo Menagerie robot assets, which "
            f"Playground clones from GitHub on first use into {mjx_env.MENAGERIE_PATH}, and "
            "they are not there; on a machine with network run once: python -c "
            "'from mujoco_playground._src import mjx_env; mjx_env.ensure_menagerie_exists()' "
            "(the DM Control Suite envs, e.g. playground/CartpoleBalance, work offline)"
        )


def is_probe_id(env: Any) -> bool:
    """Whether `env` is a "probe/<name>" id."""
    return isinstance(env, str) and env.startswith(PROBE_PREFIX)


def check_listed(env_id: str, prefix: str, names: tuple[str, ...], kind: str) -> str:
    """The name after `prefix`; ValueError naming close matches unless it is in `names`."""
    name = env_id[len(prefix) :]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
        raise ValueError(
            f"Config.env={env_id!r}: not a {kind} environment{hint} (known: {', '.join(names)})"
        )
    return name


def check_probe_id(env_id: str) -> None:
    check_listed(env_id, PROBE_PREFIX, PROBE_ENVS, "probe")


def is_brax_id(env: Any) -> bool:
    """Whether `env` is a "brax/<name>" id."""
    return isinstance(env, str) and env.startswith(BRAX_PREFIX)


def is_brax_instance(env: Any) -> bool:
    """Whether `env` is a `brax.envs.Env` instance (a user's own PipelineEnv subclass,
    say). Imports nothing: without brax imported, no such instance can exist."""
    base = sys.modules.get("brax.envs.base")
    return base is not None and isinstance(env, base.Env)


def check_brax_instance(env: Any) -> None:
    """Raise ValueError for a Brax env inside Brax's training wrappers."""
    refuse_wrapped(env, sys.modules["brax.envs.base"].Wrapper, "Brax")


def check_brax_id(env_id: str, backend: str = "auto") -> None:
    """Raise unless "brax/<name>" is a known Brax env that supports `backend`: ValueError
    naming close matches for an unknown name, ImportError with the install hint when
    brax is not installed (found without importing it)."""
    name = check_listed(env_id, BRAX_PREFIX, BRAX_ENVS, "Brax")
    if backend != "auto" and name in GENERALIZED_ONLY and backend != "generalized":
        raise ValueError(
            f"Config.brax_backend={backend!r}: Brax's {name} supports only the "
            "'generalized' backend (or use 'auto')"
        )
    if importlib.util.find_spec("brax") is None:
        raise ImportError(f"Config.env={env_id!r} needs Brax: pip install 'purejaxppo[brax]'")


def check_gymnax_id(env_id: str) -> None:
    """Raise ValueError, naming close matches (gymnax's ids and `OWN_ENVS`), unless
    `env_id` is registered in gymnax."""
    import gymnax  # the registry is a list of names; nothing is constructed

    if env_id not in gymnax.registered_envs:
        known = [*OWN_ENVS, *gymnax.registered_envs]
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Config.env={env_id!r}: not a registered gymnax environment{hint} "
            "(or pass a gymnax Environment instance)"
        )


def check_env_api(env: Any) -> None:
    """Raise TypeError unless `env` has the gymnax Environment API."""
    missing = [m for m in ENV_API if not hasattr(env, m)]
    if missing:
        raise TypeError(
            f"Config.env={env!r}: must be a gymnax environment id or an object with the "
            f"gymnax Environment API (missing {', '.join(missing)})"
        )


def check_env_id(env: Any, *, action_repeat: int = 1, brax_backend: str = "auto") -> None:
    """Raise unless `env` names an environment we can build with these options: a
    registered gymnax id, one of `OWN_ENVS`, "brax/<name>", "probe/<name>", a
    `brax.envs.Env` instance or a gymnax Environment instance. Constructs nothing."""
    physics = is_brax_id(env) or is_brax_instance(env)
    physics = physics or is_playground_id(env) or is_playground_instance(env)
    if action_repeat != 1 and not physics:
        raise ValueError(
            f"Config.action_repeat={action_repeat}: only Brax and MuJoCo Playground envs "
            f"support action repeat, not env={env!r}"
        )
    if is_brax_id(env):
        check_brax_id(env, brax_backend)
    elif is_brax_instance(env):
        check_brax_instance(env)
    elif is_playground_id(env):
        check_playground_id(env)
    elif is_playground_instance(env):
        check_playground_instance(env)
    elif library_prefix(env) is not None:
        check_library_id(env)
    elif is_probe_id(env):
        check_probe_id(env)
    elif is_own_id(env):
        return
    elif isinstance(env, str):
        check_gymnax_id(env)
    else:
        check_env_api(env)
