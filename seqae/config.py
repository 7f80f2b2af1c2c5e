"""Configuration: load YAML, fill defaults and validate against the JSON schema.

The same schema (``seqae/schemas/config.schema.yaml``, linked from
``workflow/schemas/``) is used by the Snakefile and by every ``seqae``
command, so a wrong key or type is caught once, with one line naming it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from seqae.errors import ConfigError

Config = dict[str, Any]


@cache
def config_schema() -> dict[str, Any]:
    """The configuration schema as a dict."""
    text = resources.files("seqae").joinpath("schemas/config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that ``properties`` fills in ``default`` values.

    Defaults are deep-copied so that mutating one config never changes another.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001 - jsonschema's signature
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)

# For settings handed to the Python API, "integer" means an int: JSON Schema
# also counts 64.0 as one, which would reach torch as a float width.
_StrictIntegerValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def _key_path(path) -> str:  # noqa: ANN001 - a deque of str/int
    parts: list[str] = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
    return "".join(parts) or "<top level>"


#: The schema's pattern of the names that name files and folders (TFs, species, families): no '/', not '.' or '..'.
FILE_NAME_PATTERN = r"^(?!\.+$)[A-Za-z0-9_.-]+$"


def _describe(error: jsonschema.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One line naming the key (under ``prefix``) and what is wrong with it."""
    path = [*prefix, *error.absolute_path]
    key = _key_path(path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = _key_path([*path, extra[0]]) if extra else key
        return f"{where}: unknown key (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "type":
        return f"{key}: {error.instance!r} is not of type {error.validator_value}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern" and error.validator_value == FILE_NAME_PATTERN:
        return f"{key}: {error.instance!r} may hold only letters, digits, '_', '.' and '-', and not only dots (it names files)"
    return f"{key}: {error.message}"


def _first_error(validator: jsonschema.protocols.Validator, instance: Any) -> jsonschema.ValidationError | None:
    """The first problem found: the deepest one, which names the key most exactly."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    return errors[0] if errors else None


def validate_config(config: Config, source: str = "config", genomes_required: bool = True) -> Config:
    """Validate ``config`` in place, filling defaults; return it.

    ``genomes_required=False`` takes a config without ``genomes``, for the
    commands that need none (``seqae trees`` on the user's alignments).

    Raises:
        ConfigError: one line, ``<source>: <key>: <problem>``, for the first
            problem found (the deepest one, which names the key most exactly).
    """
    schema = config_schema()
    if not genomes_required:  # a shallow copy: the cached schema stays as it is
        schema = {**schema, "required": [key for key in schema.get("required", []) if key != "genomes"]}
    error = _first_error(_DefaultFillingValidator(schema), config)
    if error is not None:
        raise ConfigError(f"{source}: {_describe(error)}")
    species = [g["species"] for g in config.get("genomes", [])]
    duplicated = sorted({s for s in species if species.count(s) > 1})
    if duplicated:
        raise ConfigError(f"{source}: genomes: species {duplicated[0]!r} is listed more than once")
    for i, genome in enumerate(config.get("genomes", [])):
        names = [tf["name"] for tf in genome["tfs"]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"{source}: genomes[{i}].tfs: TF {twice[0]!r} is listed more than once")
    tf = config.get("orthologs", {}).get("tf")
    if tf is not None:
        lacking = [g["species"] for g in config.get("genomes", []) if tf not in {t["name"] for t in g["tfs"]}]
        if lacking:
            raise ConfigError(f"{source}: orthologs.tf: genome {lacking[0]!r} has no TF {tf!r}")
    return config


def check_demo_paths(config: Config, source: str = "config") -> None:
    """Refuse a config that turns the demo off but still reads the demo's files.

    ``config`` as written, before :func:`validate_config` fills defaults: only a
    config that says ``simulate: {enabled: false}`` itself is checked (the
    sections the workflow hands its commands carry no ``simulate``, whose
    default is off). A path under ``<results>/demo_data/`` there would read the
    files an earlier ``make demo`` left (the demo's truth sites scored against
    the user's windows, its tree families fitted beside theirs) or fail late.

    Raises:
        ConfigError: one line naming the first such key.
    """
    simulation = config.get("simulate")
    if not (isinstance(simulation, Mapping) and simulation.get("enabled") is False):
        return
    # Under this config's results folder, and under the demo's own `results/`, which
    # config/config.yaml spells out whatever `results` a user's overlay then sets.
    demo = None
    for results in dict.fromkeys([os.path.normpath(str(config.get("results", "results"))), "results"]):
        demo = demo or _demo_path(config, f"{results}/demo_data/")
    if demo is not None:
        key, path = demo
        raise ConfigError(
            f"{source}: {key}: {path} is the demo's simulated data, but simulate.enabled is false: point it "
            "at your own file (trees: {families: []} and evaluate: {truth_sites: null} turn those parts off)"
        )


def _demo_path(value: Any, prefix: str, key: str = "") -> tuple[str, str] | None:
    """The first ``(dotted key, path)`` in ``value`` whose path lies under ``prefix``, or None."""
    if isinstance(value, str):
        return (key, value) if os.path.normpath(value).startswith(prefix) else None
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _demo_path(item, prefix, f"{key}[{name}]" if isinstance(name, int) else f"{key}.{name}".lstrip("."))
        if found is not None:
            return found
    return None


def json_type(value: Any) -> dict[str, Any]:
    """The JSON Schema type a setting's default tells: ``64`` -> ``{"type": "integer"}``, a list of strings ->
    ``{"type": "array", "items": {"type": "string"}}``.

    Raises:
        TypeError: a default that tells no type (None): its definition must give the type.
    """
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        items = {json_type(v)["type"] for v in value}
        return {"type": "array", "items": {"type": items.pop()}} if len(items) == 1 else {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    raise TypeError(f"no JSON type for {value!r}: give it in the constraints")


def section_with_defaults(values: Mapping[str, Any] | None, section: str) -> dict[str, Any]:
    """A copy of one top-level section of a config (``"trees"``), checked against its part of the
    schema and with its defaults filled: for the Python API, which is handed a section, not a file.

    Raises:
        ConfigError: one line, ``<section>.<key>: <problem>``.
    """
    filled = copy.deepcopy(dict(values or {}))
    error = _first_error(_DefaultFillingValidator(config_schema()["properties"][section]), filled)
    if error is not None:
        raise ConfigError(_describe(error, (section,)))
    return filled


def default_seed() -> int:
    """The top-level ``seed`` a config without one gets (the schema's default)."""
    return int(config_schema()["properties"]["seed"]["default"])


def check_settings(settings: Any, schema: dict[str, Any], where: str) -> None:
    """Check ``settings`` against ``schema``, a part of the configuration schema (the
    ``evaluate`` settings, one model's), without filling defaults.

    What the Python API is handed (settings read back from a checkpoint, a test's
    or a benchmark's dict) is checked by the same definition as a config file,
    an integer key taking only an int (not 64.0).

    Raises:
        ConfigError: one line, ``<where>.<key>: <problem>``.
    """
    error = _first_error(_StrictIntegerValidator(schema), settings)
    if error is not None:
        raise ConfigError(_describe(error, (where,)))


def read_config_yaml(path: str | Path | None, *, text: str | None = None) -> Any:
    """The parsed YAML (or JSON) of a config file, or of ``text`` (then ``path`` only names it; None: "config").

    Raises:
        ConfigError: one line naming the file (and line) that is missing, unreadable or not YAML.
    """
    source = str(path) if path is not None else "config"
    try:
        return yaml.safe_load(Path(path).read_text() if text is None else text)
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the config file ({getattr(exc, 'strerror', None) or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def genome_input_files(genomes: list[Mapping[str, Any]]) -> list[str]:
    """Every input file the ``genomes`` entries name, once each, in order: FASTA, annotation, blacklist,
    an alias table (``chrom_aliases`` other than the rules ``auto`` and ``none``), peaks and bigWigs;
    null entries left out."""
    paths = []
    for genome in genomes:
        paths += [genome.get("fasta"), genome.get("annotation"), genome.get("blacklist")]
        if genome.get("chrom_aliases") not in (None, "auto", "none"):
            paths.append(genome["chrom_aliases"])
        for tf in genome.get("tfs", []):
            paths += [tf.get("peaks"), tf.get("bigwig")]
    return list(dict.fromkeys(str(p) for p in paths if p))


def load_config(path: str | Path | None = None, *, text: str | None = None, genomes_required: bool = True) -> Config:
    """Read a YAML (or JSON) config from ``path`` or from ``text``; validate and fill defaults
    (``genomes_required``: as :func:`validate_config`)."""
    source = str(path) if path is not None else "config"
    if text is None and path is None:
        raise ConfigError("no configuration given")
    data = read_config_yaml(path, text=text)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    check_demo_paths(data, source)
    return validate_config(data, source, genomes_required)


def config_to_json(config: Config) -> str:
    """Compact JSON of a config, as passed by the Snakemake rules to ``seqae``."""
    return json.dumps(config, separators=(",", ":"), sort_keys=True)


# Keys whose value in a later config file replaces the earlier one's as a
# whole: what a user's file lists is what runs. Snakemake already replaces
# lists (genomes, trees.families); `models` is a mapping, which it would merge.
REPLACED_MAPPINGS = ("models",)


def merge_config_layers(layers: list[Config | None]) -> Config:
    """Merge config files in order, as ``snakemake --configfile`` does, except for ``models``.

    Mappings merge key by key and lists (``genomes``, ``trees.families``, ...)
    are replaced, as in Snakemake. ``models`` names the models to train: the
    last layer that gives it decides which models there are (a demo model it
    does not name is dropped), and a model named in several layers takes their
    settings merged key by key, in order (so an overlay such as config/gpu.yaml
    that lists every demo model changes their settings without redefining
    them). A model given without settings (``plain:``) keeps those of the
    earlier layers.
    """
    merged: Config = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if key in REPLACED_MAPPINGS and isinstance(value, dict) and isinstance(merged.get(key), dict):
                earlier = merged[key]
                merged[key] = {
                    name: deep_merge(earlier[name], settings or {}) if name in earlier else copy.deepcopy(settings)
                    for name, settings in value.items()
                }
            else:
                merged[key] = deep_merge(merged.get(key), value)
    return merged


def deep_merge(base: Any, extra: Any) -> Any:
    """``extra`` over ``base``: mappings key by key, anything else replaced."""
    if not (isinstance(base, dict) and isinstance(extra, dict)):
        return copy.deepcopy(extra)
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = deep_merge(out.get(key), value)
    return out


def nvidia_gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU (its device files), without
    importing torch: how the workflow resolves ``device: auto`` for the GPU
    resource its jobs ask for."""
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*"))
