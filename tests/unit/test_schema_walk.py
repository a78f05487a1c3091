"""Every key the plan's schema accepts is read by drplan's code (issue #13's rule).

A key the schema accepts is either executed (and tested), or `validate` rejects it as "not
supported yet": a key that validates and then does nothing is a broken promise (`hooks`
were one). This test walks the pydantic model of the plan (`drplan.plan.model`, every
model class and field, recursively from `Plan`) and, for each key, looks for code outside
`plan/model.py` that reads it. It fails naming every key that nothing reads.

"Reads" is found statically, with `ast`, by a small type inference that is deliberately
simple but not naive, because field names such as `run`, `timeout` or `where` are also
attributes of many other things in drplan:

- a *typed* read is an attribute access (or `getattr` with a constant, a name looped
  over constants, `Model.model_fields` or a module's constant table) on an expression
  known to be a plan model: a parameter or attribute annotated with a model class, or
  given one by its callers, a variable bound from one (assignments, `for` loops over a
  field's list or dict, `.items()`, `.values()`, `enumerate`, `isinstance`), a field of
  one, what a function annotated to return one returns;
- a *loose* read is an attribute access on an expression of unknown type; it counts only
  for a name that is distinctive (no other attribute, method or function of drplan, nor
  of str/dict/list/Path, has that name), and Jinja templates' `x.name` are loose reads;
- a key under a key that nothing reads is unread too (no code reaches it), so it is
  named once, at the top;
- what the model's own methods read (`Plan.effective_objective` reads `tiers`) counts
  once code outside calls them; its validators are the schema itself and do not count.

`python -m tests.unit.test_schema_walk` prints where each key is read.

A field read only generically (the whole model dumped, or validated by the schema
itself) goes in ALLOWED with its reason. Keep that list tiny.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

import drplan
from drplan.plan import model

PACKAGE = Path(drplan.__file__).resolve().parent
MODEL_FILE = PACKAGE / "plan" / "model.py"

# "Class.field": why no code needs to read it
ALLOWED: dict[str, str] = {
    "Plan.version": "a Literal[1]: the schema itself rejects any other value; nothing to run",
}


# -- the schema -----------------------------------------------------------------------------

# a type, as far as this test needs one: ("m", model class names), ("list", Ty), ("dict",
# Ty of the values), ("tuple", (Ty, ...)); None when unknown
Ty = tuple | None


def _models(*names: str) -> Ty:
    return ("m", frozenset(names))


def _union(a: Ty, b: Ty) -> Ty:
    if a is None:
        return b
    if b is None or a == b:
        return a
    if a[0] == b[0] == "m":
        return ("m", a[1] | b[1])
    if a[0] == b[0] == "tuple":
        if len(a[1]) != len(b[1]):
            return None
        return ("tuple", tuple(_union(x, y) for x, y in zip(a[1], b[1], strict=True)))
    if a[0] == b[0]:
        return (a[0], _union(a[1], b[1]))
    return None


def type_of(annotation: object) -> Ty:
    """The Ty of a Python annotation (a model field's, or one the code resolves)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _models(annotation.__name__)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_of(args[0])
    if origin in (Union, types.UnionType):
        out: Ty = None
        for arg in args:
            out = _union(out, type_of(arg))
        return out
    if origin is tuple and args and args[-1] is not Ellipsis:
        return ("tuple", tuple(type_of(a) for a in args))
    if origin in (list, tuple, set, frozenset) or _is_abc(origin, "Sequence", "Iterable"):
        return ("list", type_of(args[0])) if args else None
    if origin is dict or _is_abc(origin, "Mapping"):
        return ("dict", type_of(args[1])) if len(args) == 2 else None
    return None


def _element(ty: Ty) -> Ty:
    """What iterating a value of type `ty` gives (a dict gives its keys: unknown)."""
    if ty is None:
        return None
    if ty[0] == "list":
        return ty[1]
    if ty[0] == "tuple":
        out: Ty = None
        for t in ty[1]:
            out = _union(out, t)
        return out
    return None


def _is_abc(origin: object, *names: str) -> bool:
    return getattr(origin, "__name__", None) in names and getattr(
        origin, "__module__", ""
    ).startswith(("collections.abc", "typing"))


@dataclass(frozen=True)
class Key:
    """One key of the plan, at one place: `services.<name>.hooks.before_backup[].run`."""

    path: str
    owner: type[BaseModel]
    field: str
    key: str  # the name written in YAML (the alias, if any)
    parent: Key | None

    @property
    def qualname(self) -> str:
        return f"{self.owner.__name__}.{self.field}"


def _children_types(ty: Ty, path: str) -> Iterator[tuple[str, str]]:
    """(class name, path) of every model a field of type `ty` holds."""
    if ty is None:
        return
    kind, inner = ty
    if kind == "m":
        for name in sorted(inner):
            yield name, path
    elif kind == "list":
        yield from _children_types(inner, path + "[]")
    elif kind == "dict":
        yield from _children_types(inner, path + ".<name>")


def schema_keys(root: type[BaseModel], classes: dict[str, type[BaseModel]]) -> list[Key]:
    """Every key under `root`, depth first; a class met again on its own path is not
    walked twice (a recursive schema would otherwise never end)."""
    keys: list[Key] = []

    def walk(cls: type[BaseModel], prefix: str, parent: Key | None, seen: frozenset) -> None:
        for name, info in cls.model_fields.items():
            written = info.alias or name
            key = Key(f"{prefix}{written}", cls, name, written, parent)
            keys.append(key)
            for child, path in _children_types(type_of(info.annotation), key.path):
                if child not in seen:
                    walk(classes[child], path + ".", key, seen | {child})

    walk(root, "", None, frozenset({root.__name__}))
    return keys


def model_classes(module: types.ModuleType) -> dict[str, type[BaseModel]]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == module.__name__
    }


# -- the code ---------------------------------------------------------------------------------

_COMMON = {
    name
    for kind in (str, bytes, dict, list, set, tuple, int, float, Path, type(re.compile("")))
    for name in dir(kind)
}
_TEMPLATE_ATTR = re.compile(r"\.\s*([A-Za-z_]\w*)|\[\s*[\"']([A-Za-z_]\w*)[\"']\s*\]")
_PASS_THROUGH = {"sorted", "list", "reversed", "tuple", "iter", "set", "frozenset"}


@dataclass
class Reads:
    """What the code reads: typed reads (class name, field), loose reads (attribute names
    on values of unknown type) and names drplan defines for its own objects."""

    typed: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    loose: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    defined: set[str] = field(default_factory=set)

    def reads(self, key: Key) -> str | None:
        """Where `key` is read (one place, for the message), or None."""
        for name in {key.field, key.key}:
            typed = self.typed.get((key.owner.__name__, name))
            if typed:
                return sorted(typed)[0]
            loose = self.loose.get(name)
            if loose and self.distinctive(name):
                return sorted(loose)[0] + " (by name)"
        return None

    def distinctive(self, name: str) -> bool:
        return name not in self.defined and name not in _COMMON


class _Module:
    """The names one module gives the plan model: its classes and the module itself."""

    def __init__(self, tree: ast.Module, classes: dict[str, type[BaseModel]]) -> None:
        self.classes = classes
        self.aliases: dict[str, Ty] = {}  # local name -> a model class or alias
        self.modules: set[str] = set()  # local names of drplan.plan.model
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    local = a.asname or a.name
                    if node.module == "drplan.plan.model":
                        ty = self.model_name(a.name)
                        if ty is not None:
                            self.aliases[local] = ty
                    elif node.module == "drplan.plan" and a.name == "model":
                        self.modules.add(local)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "drplan.plan.model" and a.asname:
                        self.modules.add(a.asname)

    def model_name(self, name: str) -> Ty:
        """A name of drplan.plan.model as a type: a class, or an alias like `Check`."""
        if name in self.classes:
            return _models(name)
        value = getattr(model, name, None)
        return type_of(value) if value is not None and name[:1].isupper() else None

    def annotation(self, node: ast.expr | None) -> Ty:
        """The Ty an annotation names, as far as plan models go."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                return self.annotation(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return None
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in self.modules:
                return self.model_name(node.attr)
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _union(self.annotation(node.left), self.annotation(node.right))
        if isinstance(node, ast.Subscript):
            outer = node.value.attr if isinstance(node.value, ast.Attribute) else None
            outer = outer or (node.value.id if isinstance(node.value, ast.Name) else "")
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if outer == "tuple" and not (
                isinstance(args[-1], ast.Constant) and args[-1].value is Ellipsis
            ):
                return ("tuple", tuple(self.annotation(a) for a in args))
            if outer in ("list", "Sequence", "Iterable", "Iterator", "tuple", "set", "frozenset"):
                return ("list", self.annotation(args[0]))
            if outer in ("dict", "Mapping") and len(args) == 2:
                return ("dict", self.annotation(args[1]))
            if outer == "Optional":
                return self.annotation(args[0])
        return None


class _Scan:
    """Reads of one module: a pass over each function with a name -> Ty environment."""

    def __init__(
        self, where: str, tree: ast.Module, mod: _Module, reads: Reads, attrs: dict, calls: dict
    ) -> None:
        self.where, self.tree, self.mod, self.reads = where, tree, mod, reads
        # shared by every module: attribute name -> Ty, and function name -> {parameter
        # position or name: Ty of the arguments its callers pass}
        self.attrs, self.calls = attrs, calls
        self.classes = mod.classes
        self.self_types: dict[str, Ty] = {}  # class name -> the type of its `self`
        # module-level constants naming things: `ROLES = {"direction": ...}`, `KINDS = (...)`
        self.module_consts: dict[str, list[str]] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = self.constant_names(node.value, {})
                for t in targets:
                    if isinstance(t, ast.Name) and names:
                        self.module_consts[t.id] = names

    # -- expressions --

    def field_type(self, ty: Ty, name: str) -> Ty:
        out: Ty = None
        for cls_name in ty[1]:
            info = self.classes[cls_name].model_fields.get(name)
            if info is not None:
                out = _union(out, type_of(info.annotation))
            else:
                member = getattr(self.classes[cls_name], name, None)
                hints = getattr(getattr(member, "fget", member), "__annotations__", {})
                ret = hints.get("return")
                if isinstance(ret, str):
                    ret = self.mod.annotation(ast.parse(ret, mode="eval").body)
                    out = _union(out, ret)
        return out

    def attribute(self, ty: Ty, name: str, line: int) -> Ty:
        where = f"{self.where}:{line}"
        if ty is not None and ty[0] == "m":
            for cls_name in ty[1]:
                self.reads.typed[(cls_name, name)].add(where)
            return self.field_type(ty, name)
        self.reads.loose[name].add(where)
        return self.attrs.get(name)

    def expr(self, node: ast.AST | None, env: dict[str, Ty], consts: dict) -> Ty:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.expr(node.value, env, consts), node.attr, node.lineno)
        if isinstance(node, ast.Subscript):
            ty = self.expr(node.value, env, consts)
            self.expr(node.slice, env, consts)
            if ty is not None and ty[0] == "tuple":
                index = node.slice.value if isinstance(node.slice, ast.Constant) else None
                return (
                    ty[1][index]
                    if isinstance(index, int) and -len(ty[1]) <= index < len(ty[1])
                    else None
                )
            return ty[1] if ty is not None and ty[0] in ("list", "dict") else None
        if isinstance(node, ast.Call):
            return self.call(node, env, consts)
        if isinstance(node, ast.IfExp):
            self.expr(node.test, env, consts)
            return _union(self.expr(node.body, env, consts), self.expr(node.orelse, env, consts))
        if isinstance(node, ast.Tuple):
            return ("tuple", tuple(self.expr(e, env, consts) for e in node.elts))
        if isinstance(node, ast.List | ast.Set):
            out_: Ty = None
            for e in node.elts:
                out_ = _union(out_, self.expr(e, env, consts))
            return ("list", out_)
        if isinstance(node, ast.BoolOp):
            out: Ty = None
            for value in node.values:
                out = _union(out, self.expr(value, env, consts))
            return out
        if isinstance(node, ast.NamedExpr):
            ty = self.expr(node.value, env, consts)
            self.bind(node.target, ty, env)
            return ty
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = dict(env)
            for gen in node.generators:
                self.bind_loop(gen.target, gen.iter, inner, consts)
                for cond in gen.ifs:
                    self.expr(cond, inner, consts)
            if isinstance(node, ast.DictComp):
                self.expr(node.key, inner, consts)
                return ("dict", self.expr(node.value, inner, consts))
            return ("list", self.expr(node.elt, inner, consts))
        if isinstance(node, ast.Lambda):
            self.expr(node.body, dict(env), consts)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, env, consts)
        return None

    def call(self, node: ast.Call, env: dict[str, Ty], consts: dict) -> Ty:
        func, args = node.func, node.args
        arg_types = [self.expr(a, env, consts) for a in args]
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        passed = self.calls.setdefault(name, {}) if name else {}
        for i, ty in enumerate(arg_types):
            if ty is not None:
                passed[i] = _union(passed.get(i), ty)
            names = self.constant_names(args[i], consts)
            if names:
                passed[("names", i)] = sorted({*passed.get(("names", i), []), *names})
        for kw in node.keywords:
            ty = self.expr(kw.value, env, consts)
            if ty is not None and kw.arg:
                passed[kw.arg] = _union(passed.get(kw.arg), ty)
            names = self.constant_names(kw.value, consts) if kw.arg else []
            if names:
                passed[("names", kw.arg)] = sorted({*passed.get(("names", kw.arg), []), *names})
        if isinstance(func, ast.Name):
            if func.id in ("getattr", "hasattr") and len(args) >= 2:
                names = self.constant_names(args[1], consts)
                out: Ty = None
                for name in names:
                    out = _union(out, self.attribute(arg_types[0], name, node.lineno))
                return out if func.id == "getattr" else None
            if func.id == "isinstance" and len(args) == 2 and isinstance(args[0], ast.Name):
                narrowed = self.mod.annotation(args[1])
                if isinstance(args[1], ast.Tuple):
                    for elt in args[1].elts:
                        narrowed = _union(narrowed, self.mod.annotation(elt))
                if narrowed is not None:
                    env[args[0].id] = _union(env.get(args[0].id), narrowed)
                return None
            if func.id in _PASS_THROUGH and arg_types:
                return arg_types[0]
            if func.id == "enumerate" and arg_types and _element(arg_types[0]) is not None:
                return ("list", ("tuple", (None, _element(arg_types[0]))))
            if func.id == "zip":
                return ("list", ("tuple", tuple(_element(t) for t in arg_types)))
            return self.attrs.get(f"{func.id}()")
        if isinstance(func, ast.Attribute):
            owner = self.expr(func.value, env, consts)
            if owner is not None and owner[0] == "dict":
                if func.attr == "items":
                    return ("list", ("tuple", (None, owner[1])))
                if func.attr == "values":
                    return ("list", owner[1])
                if func.attr in ("get", "pop", "setdefault"):
                    return owner[1]
                return None
            if owner is not None and owner[0] == "m" and func.attr == "model_dump":
                for kw in node.keywords:
                    if kw.arg == "include":
                        for name in self.constant_names(kw.value, consts):
                            self.attribute(owner, name, node.lineno)
                return None
            # a model's method: its return type; anything else's: what `def name(...) ->`
            # says wherever drplan defines a function of that name
            returned = self.attribute(owner, func.attr, node.lineno)
            if owner is not None and owner[0] == "m":
                return returned
            return self.attrs.get(f"{func.attr}()")
        self.expr(func, env, consts)
        return None

    def constant_names(self, node: ast.expr, consts: dict) -> list[str]:
        """The strings an expression stands for: a constant, a collection of them, a name
        bound to some (a loop over constants, a parameter its callers give constants, a
        module constant), `Model.model_fields` (every field name)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name):
            return consts.get(node.id) or self.module_consts.get(node.id, [])
        if isinstance(node, ast.Set | ast.List | ast.Tuple | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            return [
                e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
        if isinstance(node, ast.Attribute) and node.attr == "model_fields":
            ty = self.mod.annotation(node.value)
            if ty is not None and ty[0] == "m":
                return sorted({f for c in ty[1] for f in self.classes[c].model_fields})
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("keys", "items"):
                return self.constant_names(func.value, consts)
            if isinstance(func, ast.Name) and func.id in _PASS_THROUGH and node.args:
                return self.constant_names(node.args[0], consts)
        return []

    # -- statements --

    def bind(self, target: ast.AST, ty: Ty, env: dict[str, Ty]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = _union(env.get(target.id), ty)
        elif isinstance(target, ast.Tuple | ast.List):
            if ty is not None and ty[0] == "tuple" and len(ty[1]) == len(target.elts):
                for elt, elt_ty in zip(target.elts, ty[1], strict=True):
                    self.bind(elt, elt_ty, env)
            else:
                for elt in target.elts:
                    self.bind(elt, _element(ty), env)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, None, env)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            if target.value.id == "self" and ty is not None:
                self.attrs[target.attr] = _union(self.attrs.get(target.attr), ty)
        elif isinstance(target, ast.Attribute | ast.Subscript):
            self.expr(target.value, env, {})

    def bind_loop(self, target: ast.AST, iterable: ast.expr, env: dict, consts: dict) -> None:
        ty = self.expr(iterable, env, consts)
        names = self.constant_names(iterable, consts)
        first = target.elts[0] if isinstance(target, ast.Tuple) and target.elts else target
        if names and isinstance(first, ast.Name):
            consts[first.id] = names
        self.bind(target, _element(ty), env)

    def body(self, stmts: Iterable[ast.stmt], env: dict[str, Ty], consts: dict) -> None:
        for stmt in stmts:
            self.stmt(stmt, env, consts)

    def stmt(self, stmt: ast.stmt, env: dict[str, Ty], consts: dict) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(stmt, env, consts.get("<class>"))
        elif isinstance(stmt, ast.ClassDef):
            self.body(stmt.body, dict(env), {"<class>": stmt.name})
        elif isinstance(stmt, ast.Assign):
            ty = self.expr(stmt.value, env, consts)
            for target in stmt.targets:
                self.bind(target, ty, env)
        elif isinstance(stmt, ast.AnnAssign):
            ty = _union(self.mod.annotation(stmt.annotation), self.expr(stmt.value, env, consts))
            self.bind(stmt.target, ty, env)
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            self.bind_loop(stmt.target, stmt.iter, env, consts)
            self.body(stmt.body, env, consts)
            self.body(stmt.orelse, env, consts)
        else:
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.expr(child, env, consts)
                elif isinstance(child, ast.stmt):
                    self.stmt(child, env, consts)
                elif isinstance(child, ast.withitem):
                    self.bind(child.optional_vars, self.expr(child.context_expr, env, consts), env)
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    self.body(child.body, env, consts)

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, outer: dict, cls: str | None = None
    ) -> None:
        """A function's body; a parameter's type is its annotation's, or what its callers
        pass (by position or name: calls are matched by the function's name, or the
        class's for `__init__`)."""
        env = dict(outer)
        consts: dict[str, list[str]] = {}
        a = node.args
        passed = self.calls.get(cls if cls and node.name == "__init__" else node.name, {})
        positional = [*a.posonlyargs, *a.args]
        if cls and positional and positional[0].arg in ("self", "cls"):
            env[positional[0].arg] = self.self_types.get(cls)
            positional = positional[1:]
        for i, arg in enumerate(positional):
            ty = self.mod.annotation(arg.annotation)
            env[arg.arg] = _union(_union(ty, passed.get(i)), passed.get(arg.arg))
            consts[arg.arg] = [*passed.get(("names", i), []), *passed.get(("names", arg.arg), [])]
        for arg in [*a.kwonlyargs, a.vararg, a.kwarg]:
            if arg is not None:
                env[arg.arg] = _union(self.mod.annotation(arg.annotation), passed.get(arg.arg))
                consts[arg.arg] = passed.get(("names", arg.arg), [])
        for default in [*a.defaults, *a.kw_defaults]:
            self.expr(default, outer, {})
        for _ in range(2):  # a second pass sees names bound after their first use
            self.body(node.body, env, consts)

    def run(self) -> None:
        self.body(self.tree.body, {}, {})

    def model_methods(self) -> None:
        """The plan model's own methods and properties (not its validators: those are the
        schema itself) that code outside reads: what they read is read."""
        for node in self.tree.body:
            if not isinstance(node, ast.ClassDef) or node.name not in self.classes:
                continue
            self.self_types[node.name] = _models(node.name)
            for item in node.body:
                if not isinstance(item, ast.FunctionDef) or any(
                    "validator" in ast.unparse(d) for d in item.decorator_list
                ):
                    continue
                if self.reads.typed.get((node.name, item.name)) or self.reads.loose.get(item.name):
                    self.function(item, {}, node.name)


def _attribute_types(trees: dict[str, ast.Module], mods: dict[str, _Module]) -> dict[str, Ty]:
    """Plan types of drplan's own attributes and functions, by name, from their
    annotations (`plan: Plan` of a dataclass, `def plan(self) -> Plan`, `self.x: T`);
    `name()` for what a call of `name` returns. Names that disagree merge. (`self.x = v`
    adds the type of `v` while scanning.)"""
    out: dict[str, Ty] = {}

    def add(name: str, ty: Ty) -> None:
        if ty is not None:
            out[name] = _union(out.get(name), ty)

    for where, tree in trees.items():
        mod = mods[where]
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        add(item.target.id, mod.annotation(item.annotation))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                ret = mod.annotation(node.returns)
                add(f"{node.name}()", ret)
                if any(
                    isinstance(d, ast.Name) and d.id in ("property", "cached_property")
                    for d in node.decorator_list
                ):
                    add(node.name, ret)
                for sub in ast.walk(node):
                    if (
                        isinstance(sub, ast.AnnAssign)
                        and isinstance(sub.target, ast.Attribute)
                        and isinstance(sub.target.value, ast.Name)
                        and sub.target.value.id == "self"
                    ):
                        add(sub.target.attr, mod.annotation(sub.annotation))
    return out


def _defined_names(trees: Iterable[ast.Module]) -> set[str]:
    """Names drplan gives its own attributes, methods and functions: a loose `.name` of
    one of these may be theirs, so it proves nothing about a plan field."""
    out: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.add(node.name)
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            out.add(item.target.id)
                        elif isinstance(item, ast.Assign):
                            out.update(t.id for t in item.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.Call):
                # keyword arguments of constructors (`Thing(name=...)`) name attributes too
                out.update(kw.arg for kw in node.keywords if kw.arg)
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign):
                out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


def scan(
    sources: dict[str, str],
    templates: dict[str, str],
    classes: dict[str, type[BaseModel]],
    model_source: str,
) -> Reads:
    """The reads of drplan's modules (`where` -> Python text), its templates, and of the
    model's own methods that they call."""
    trees = {where: ast.parse(text, filename=where) for where, text in sources.items()}
    mods = {where: _Module(tree, classes) for where, tree in trees.items()}
    attrs = _attribute_types(trees, mods)
    calls: dict[str, dict] = {}
    reads = Reads(defined=_defined_names(trees.values()))
    model_tree = ast.parse(model_source)
    model_scan = _Scan(
        "plan/model.py", model_tree, _Module(model_tree, classes), reads, attrs, calls
    )
    for _ in range(3):  # what one pass learns (callers' types, attributes) serves the next
        for where, tree in trees.items():
            _Scan(where, tree, mods[where], reads, attrs, calls).run()
        model_scan.model_methods()
    for where, text in templates.items():
        for n, line in enumerate(text.splitlines(), 1):
            for m in _TEMPLATE_ATTR.finditer(line):
                reads.loose[m.group(1) or m.group(2)].add(f"{where}:{n}")
    return reads


def unread_keys(keys: list[Key], reads: Reads, allowed: dict[str, str]) -> list[str]:
    """The keys nothing reads, each named once at the top (what is under it is unread
    with it); a key of a class met in several places is named in each."""
    unread: list[str] = []
    hidden: set[Key] = set()
    for key in keys:
        if key.parent in hidden:
            hidden.add(key)
            continue
        if key.qualname in allowed or reads.reads(key) is not None:
            continue
        hidden.add(key)
        unread.append(f"{key.path}  ({key.qualname})")
    return unread


def drplan_sources() -> tuple[dict[str, str], dict[str, str]]:
    sources = {
        str(p.relative_to(PACKAGE.parent)): p.read_text()
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.resolve() != MODEL_FILE
    }
    templates = {str(p.relative_to(PACKAGE.parent)): p.read_text() for p in PACKAGE.rglob("*.j2")}
    return sources, templates


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_reads() -> tuple[list[Key], Reads]:
    classes = model_classes(model)
    sources, templates = drplan_sources()
    reads = scan(sources, templates, classes, MODEL_FILE.read_text())
    return schema_keys(model.Plan, classes), reads


def test_every_key_of_the_schema_is_read_by_the_code(plan_reads):
    keys, reads = plan_reads
    unread = unread_keys(keys, reads, ALLOWED)
    assert not unread, (
        "keys the plan's schema accepts that no code outside plan/model.py reads: run them "
        "(and test them), or have `drplan validate` reject them as not supported yet:\n  "
        + "\n  ".join(unread)
    )


def test_the_walk_reaches_every_model_class_and_field():
    classes = model_classes(model)
    keys = schema_keys(model.Plan, classes)
    walked = {k.qualname for k in keys}
    # every class but the bases (`Strict`, `_CheckBase`), whose fields are their subclasses'
    every = {
        f"{name}.{f}"
        for name, cls in classes.items()
        if name != "Strict" and not name.startswith("_")
        for f in cls.model_fields
    }
    assert walked == every
    assert "services.<name>.hooks.before_backup[].timeout" in {k.path for k in keys}
    assert "services.<name>.checks[].expect_output" in {k.path for k in keys}


def test_the_allow_list_names_real_fields_with_reasons():
    classes = model_classes(model)
    for qualname, reason in ALLOWED.items():
        cls, _, name = qualname.partition(".")
        assert name in classes[cls].model_fields, qualname
        assert len(reason) > 20, qualname


# The walker itself, on a toy schema and toy code: it must fail where a key is unread, and
# be neither fooled by a name another object shares nor blind to the ways code reads.

TOY = """
from __future__ import annotations
from pydantic import BaseModel


class Strict(BaseModel):
    pass


class Step(Strict):
    run: str
    timeout: float = 1.0
    where: str = "here"


class Steps(Strict):
    first: list[Step] = []
    last: list[Step] = []
    never: list[Step] = []


class Job(Strict):
    name: str
    steps: Steps = Steps()
    labels: dict[str, Step] = {}
    colour_of_the_sky: str = "blue"
    forgotten: Step | None = None


class Root(Strict):
    jobs: dict[str, Job]
    comment: str = ""
"""


def _toy(code: str, templates: dict[str, str] | None = None) -> list[str]:
    module = types.ModuleType("toy_model")
    sys.modules["toy_model"] = module
    try:
        exec(compile(TOY, "toy_model.py", "exec"), module.__dict__)
        classes = model_classes(module)
        for cls in classes.values():
            cls.model_rebuild(_types_namespace=module.__dict__)
        keys = schema_keys(classes["Root"], classes)
        # the toy code imports the toy classes from drplan.plan.model: the walker takes
        # the names it is given as that module's classes
        reads = scan({"toy/code.py": code}, templates or {}, classes, TOY)
        return [line.split()[0] for line in unread_keys(keys, reads, {})]
    finally:
        del sys.modules["toy_model"]


TOY_CODE = """
from drplan.plan.model import Job, Root, Step
import subprocess


class Runner:
    def __init__(self, timeout: float, where: str) -> None:
        self.timeout, self.where = timeout, where

    def run(self) -> None:
        subprocess.run(["true"], timeout=self.timeout)


def go(root: Root, runner: Runner) -> None:
    for name, job in root.jobs.items():
        print(name, job.name, runner.where, runner.timeout)
        for kind in ("first", "last"):
            for step in getattr(job.steps, kind):
                do(step)
        for label, step in job.labels.items():
            print(label, step.run, step.timeout, step.where)


def do(step: Step) -> None:
    print(step.run)
"""


def test_the_walker_names_what_is_unread_and_not_what_is_read():
    assert _toy(TOY_CODE) == [
        "jobs.<name>.steps.never",
        "jobs.<name>.colour_of_the_sky",
        "jobs.<name>.forgotten",
        "comment",
    ]


def test_a_name_other_objects_share_proves_nothing():
    """`timeout` and `where` are read on a Runner, and `run` is a method: the steps'
    own `timeout` and `where` stay unread when only `run` is read of a step."""
    code = TOY_CODE.replace("print(label, step.run, step.timeout, step.where)", "print(label)")
    assert _toy(code)[:3] == [
        "jobs.<name>.steps.first[].timeout",
        "jobs.<name>.steps.first[].where",
        "jobs.<name>.steps.last[].timeout",
    ]


def test_a_distinctive_name_in_a_template_is_a_read():
    code = TOY_CODE.replace("job.name, ", "")
    assert "jobs.<name>.colour_of_the_sky" in _toy(code)
    assert "jobs.<name>.colour_of_the_sky" not in _toy(code, {"t.j2": "{{ j.colour_of_the_sky }}"})


def test_a_key_under_an_unread_key_is_named_once_at_the_top():
    code = TOY_CODE.replace("getattr(job.steps, kind)", "[]")
    unread = _toy(code)
    assert "jobs.<name>.steps" in unread
    assert not [k for k in unread if k.startswith("jobs.<name>.steps.")]


def main() -> None:
    """Print, for each key, where it is read (or that it is not)."""
    classes = model_classes(model)
    sources, templates = drplan_sources()
    reads = scan(sources, templates, classes, MODEL_FILE.read_text())
    for key in schema_keys(model.Plan, classes):
        print(f"{key.path}  ({key.qualname}): {reads.reads(key) or 'UNREAD'}")


if __name__ == "__main__":
    main()
