"""Griffe extension for the API reference: turns the docstrings' Sphinx roles into links.

The package's docstrings are Google style but cross-reference with Sphinx roles
(``:class:`~keras_nasnet.genotypes.Genotype```, ``:func:`load_exported```). Markdown would show
those as literal text, so before mkdocstrings renders a docstring each role becomes an *optional*
mkdocs-autorefs reference: a link where the target is rendered somewhere on the site, plain code
where it is not (a private module, a method left out of a page), and never a build warning.
Unqualified names are looked up from the object outwards (its members, its class, its module, the
package), as Sphinx does.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")


def _candidates(obj: griffe.Object, name: str):
    yield name
    scope = obj
    while scope is not None:
        yield f"{scope.path}.{name}"
        scope = scope.parent
    root = obj.package.path
    yield f"{root}.{name}"


def _resolve(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` seen from ``obj``, or ``name`` if nothing by that name exists."""
    collection = obj.modules_collection
    for path in _candidates(obj, name):
        try:
            found = collection.get_member(path)
        except (KeyError, ValueError, AttributeError):
            continue
        if found.is_alias:  # an imported name: link to where it is defined (and documented)
            try:
                return found.final_target.path
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                pass
        return path
    return name


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        short, name = match.group(1), match.group(2)
        path = _resolve(obj, name)
        title = name.rsplit(".", 1)[-1] if short else name
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return _ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx cross-reference roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:  # noqa: D102
        seen = set()
        stack = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            stack.extend(member for member in obj.members.values() if not member.is_alias)
