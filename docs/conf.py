"""Sphinx configuration for selfmigrate's user's guide.

Built in the test suite (tests/test_docs.py) with ``-W --keep-going``: a broken
reference or a failing doctest fails the build.
"""

from __future__ import annotations

import sys

project = "selfmigrate"
author = "The selfmigrate maintainers"
copyright = "the selfmigrate maintainers"

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

html_theme = "alabaster"
html_title = "selfmigrate"
html_show_sourcelink = False

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
