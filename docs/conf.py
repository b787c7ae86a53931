"""Sphinx configuration for selfmigrate's user's guide.

Built in the test suite (tests/test_docs.py) with ``-W --keep-going``: a broken
reference or a failing doctest fails the build.
"""

from __future__ import annotations

import sys
import typing as t

import selfmigrate

project = "selfmigrate"
author = "The selfmigrate maintainers"
copyright = "the selfmigrate maintainers"
# The version shown beside the title on every page is the package's own.
release = selfmigrate.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
]

root_doc = "index"
exclude_patterns = ["_build", "samples"]
templates_path: list[str] = []

# Every cross-reference must resolve (tests/test_docs.py builds with -W). The
# standard library and the frameworks are documented elsewhere; without network
# access there is no intersphinx, so references into them are not checked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(sorted(sys.stdlib_module_names))}|t)(\..*)?"),
    (r"py:.*", r"(flask|click|pytest|_pytest|werkzeug)(\..*)?"),
    (r"py:.*", r"(Flask|Path|PathLike|Sequence|Mapping|Iterator|Callable|Any|Literal)"),
    # Documented in api.rst under selfmigrate.faces.flask (it is not importable
    # from selfmigrate), referred to by its short name in apply()'s docstring.
    (r"py:class", r"FlaskState"),
    # The settings object is listed in api.rst's "Modules", not documented by autodoc.
    (r"py:class", r"(selfmigrate\.config\.)?Options"),
    # The submodules are not part of the API (api.rst documents the package).
    (r"py:mod", r"selfmigrate\..*"),
]

autodoc_member_order = "bysource"
# Signatures show names only: the docstrings say what each parameter takes, and
# type hints would link to internal aliases (LocationsSpec, ...) that are not API.
autodoc_typehints = "none"
autodoc_preserve_defaults = True

# Furo: what most current Python projects' guides look like (pip, attrs,
# urllib3...), with a menu on narrow screens and a light and a dark scheme.
html_theme = "furo"
html_title = f"selfmigrate {release}"
html_show_sourcelink = False
html_static_path = ["_static"]
# Long lines wrap instead of scrolling (the docs tests check every code block
# at 1280 px in a real browser: tests/test_docs_screens.py).
html_css_files = ["selfmigrate.css"]
html_theme_options = {
    "navigation_with_keys": True,
}

# doctest blocks run in a fresh temporary folder, never in the source tree.
doctest_global_setup = """
import os, tempfile
_doctest_cwd = os.getcwd()
_doctest_tmp = tempfile.TemporaryDirectory()
os.chdir(_doctest_tmp.name)
"""
doctest_global_cleanup = """
os.chdir(_doctest_cwd)
_doctest_tmp.cleanup()
"""


# The pages whose sections (the command line's commands) are entries of the
# navigation sidebar; every other page is one entry.
NAVIGATION_SECTIONS = {"cli"}


def _navigation_with_sections(
    app: t.Any, pagename: str, templatename: str, context: dict[str, t.Any], doctree: t.Any
) -> None:
    """Furo's sidebar tree, with the sections of NAVIGATION_SECTIONS' pages under them.

    Furo builds its tree from the toctree with page titles only; this builds it
    with the sections, keeps those of the pages named above, and hands it to
    Furo's own decoration (expand buttons, current page).
    """
    if "furo_navigation_tree" not in context or "toctree" not in context:
        return
    from bs4 import BeautifulSoup
    from furo.navigation import get_navigation_tree

    html = context["toctree"](collapse=False, titles_only=False, maxdepth=-1, includehidden=True)
    soup = BeautifulSoup(html, "html.parser")
    for item in soup.select("li.toctree-l1"):
        link = item.find("a")
        href = str(link.get("href", "")) if link else ""
        # Links are relative to this page (all pages are at the top); its own is "#".
        page = pagename if href.startswith("#") else href.split("#", 1)[0].removesuffix(".html")
        if page not in NAVIGATION_SECTIONS:
            for sublist in item.find_all("ul", recursive=False):
                sublist.decompose()
    tree = BeautifulSoup(get_navigation_tree(str(soup)), "html.parser")
    # On such a page its whole tree is open (Furo opens only the current page's level).
    for checkbox in tree.select("li.toctree-l1.current input.toctree-checkbox"):
        checkbox["checked"] = ""
    context["furo_navigation_tree"] = str(tree)


def setup(app: t.Any) -> None:
    # After Furo's own handler (priority 500), which sets furo_navigation_tree.
    app.connect("html-page-context", _navigation_with_sections, priority=900)
