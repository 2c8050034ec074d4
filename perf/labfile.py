"""Reading the YAML files of perf/ (lab experiments, RFC 2544 runs) the way
ngstack reads its configs: every mistake is reported as
FILE:LINE:COLUMN: KEY: what is wrong, and unknown keys are errors."""
import yaml


class SpecError(Exception):
    pass


class Map:
    """One YAML mapping: typed getters that remember which keys were read;
    finish() rejects the rest."""

    def __init__(self, node, path, file):
        self.node, self.path, self.file = node, path, file
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, "expected a mapping")
        self.items = {k.value: (k, v) for k, v in node.value}
        self.used = set()

    def fail(self, node, key, msg):
        m = node.start_mark
        raise SpecError(f"{self.file}:{m.line + 1}:{m.column + 1}: {key}: {msg}")

    def key_path(self, key):
        return f"{self.path}.{key}" if self.path else key

    def has(self, key):
        return key in self.items

    def value_node(self, key):
        self.used.add(key)
        return self.items[key][1]

    def require(self, key):
        if key not in self.items:
            self.fail(self.node, self.path or key, f'missing key "{key}"')
        return self.value_node(key)

    def scalar(self, node, key, kind, lo=None, hi=None, choices=None):
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, key, f"expected {kind_name(kind)}")
        text = node.value
        if kind is bool:
            if text in ("true", "yes", "on"):
                return True
            if text in ("false", "no", "off"):
                return False
            self.fail(node, key, f'expected true or false, got "{text}"')
        if kind is str:
            if choices is not None and text not in choices:
                self.fail(node, key, f'unknown value "{text}" (known: {", ".join(choices)})')
            return text
        try:
            value = kind(text)
        except ValueError:
            self.fail(node, key, f'expected {kind_name(kind)}, got "{text}"')
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(node, key, f"must be in [{lo}, {hi}], got {text}")
        return value

    def get(self, key, kind, default=None, lo=None, hi=None, choices=None):
        if key not in self.items:
            return default
        return self.scalar(self.value_node(key), self.key_path(key), kind, lo, hi, choices)

    def get_list(self, key, kind, default=None, lo=None, hi=None, choices=None):
        if key not in self.items:
            return default
        node = self.value_node(key)
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, self.key_path(key), "expected a non-empty list")
        return [self.scalar(n, self.key_path(key), kind, lo, hi, choices) for n in node.value]

    def sub(self, key):
        return Map(self.value_node(key), self.key_path(key), self.file)

    def sub_list(self, key):
        """The mappings of a non-empty list."""
        node = self.value_node(key)
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, self.key_path(key), "expected a non-empty list")
        return [Map(n, f"{self.key_path(key)}[{i}]", self.file) for i, n in enumerate(node.value)]

    def pos(self, key):
        m = self.items[key][0].start_mark
        return f"{self.file}:{m.line + 1}:{m.column + 1}"

    def finish(self):
        for k, (knode, _) in self.items.items():
            if k not in self.used:
                self.fail(knode, self.key_path(k), "unknown key")


def kind_name(kind):
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]


def load(path):
    """The top-level mapping of the YAML file at `path`."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}")
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark
        raise SpecError(f"{path}:{m.line + 1}:{m.column + 1}: YAML syntax error: {e.problem}")
    if root is None:
        raise SpecError(f"{path}: the file is empty")
    return Map(root, "", path)


def rate_of(m, key):
    """A rate mapping with exactly one of pps, bps, percent (as in traffic
    generators): returns (unit, value)."""
    r = m.sub(key)
    units = [u for u in ("pps", "bps", "percent") if r.has(u)]
    if len(units) != 1:
        r.fail(r.node, r.path, "give exactly one of pps, bps, percent")
    value = r.get(units[0], float, lo=1e-9, hi=100.0 if units[0] == "percent" else 1e13)
    r.finish()
    return units[0], value
