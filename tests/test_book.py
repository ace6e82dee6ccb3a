"""The package ``salience_lib.book``: importing it changes nothing, and it re-exports every module's names."""

import importlib

import ipywidgets as widgets
import matplotlib as mpl

from salience_lib import book
from salience_lib.book import (
    blur,
    chapters,
    curves,
    examples,
    explorer,
    faces,
    figures,
    frames,
    landing,
    own_data,
    panels,
    plots,
    recipes,
    results,
    runs,
    sanity,
    seeds,
    style,
)
from salience_lib.book import widgets as book_widgets

MODULES = (
    style,
    figures,
    book_widgets,
    recipes,
    results,
    plots,
    chapters,
    panels,
    frames,
    examples,
    runs,
    faces,
    blur,
    curves,
    seeds,
    sanity,
    own_data,
    explorer,
    landing,
)


def test_import_has_no_side_effects():
    before = dict(mpl.rcParams)
    n_widgets = len(widgets.widget._instances)
    for module in (*MODULES, book):
        importlib.reload(module)
    assert dict(mpl.rcParams) == before
    assert len(widgets.widget._instances) == n_widgets


def test_every_public_name_is_re_exported():
    names = [name for module in MODULES for name in module.__all__]
    assert len(names) == len(set(names)), "a name is public in two modules"
    assert sorted(book.__all__) == sorted(names)
    for module in MODULES:
        for name in module.__all__:
            assert getattr(book, name) is getattr(module, name), name
