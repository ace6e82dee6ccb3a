import matplotlib as mpl

from salience_lib.book import style


def test_recipe_colours_are_fixed_and_colour_blind_safe():
    assert style.RECIPE_COLORS == {"xent": "#D55E00", "cyborg": "#0072B2"}
    assert set(style.RECIPE_COLORS.values()) <= set(style.PALETTE)
    assert style.RECIPE_LABELS == {"xent": "XENT", "cyborg": "CYBORG"}
    assert style.MASK_COLOR in style.PALETTE


def test_recipe_color_of_known_and_other_recipes():
    assert style.recipe_color("xent", 5) == style.RECIPE_COLORS["xent"]
    assert style.recipe_color("cyborg") == style.RECIPE_COLORS["cyborg"]
    others = {style.recipe_color("other", k) for k in range(len(style.PALETTE) - 2)}
    assert len(others) == len(style.PALETTE) - 2, "other recipes get distinct palette colours"
    assert style.recipe_color("other", 0) not in style.RECIPE_COLORS.values()


def test_use_style_is_idempotent():
    with mpl.rc_context():
        style.use_style()
        first = dict(mpl.rcParams)
        style.use_style()
        assert dict(mpl.rcParams) == first
        assert mpl.rcParams["image.cmap"] == style.MAP_CMAP
        cycle = [mpl.colors.to_hex(c).upper() for c in mpl.rcParams["axes.prop_cycle"].by_key()["color"]]
        assert cycle[:2] == [style.RECIPE_COLORS["cyborg"], style.RECIPE_COLORS["xent"]]
