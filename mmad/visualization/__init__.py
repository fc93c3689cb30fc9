from .curves import load_curves, plot_curves
from .heatmap import (
    COLOUR_BAR_WIDTH,
    DECISION_COLOURS,
    TITLE_BAR,
    colorize,
    colour_bar,
    draw_sample_panel,
    input_tile,
    outline,
    overlay,
)

__all__ = ['COLOUR_BAR_WIDTH', 'DECISION_COLOURS', 'TITLE_BAR', 'colorize', 'colour_bar', 'draw_sample_panel',
           'input_tile', 'load_curves', 'outline', 'overlay', 'plot_curves']
