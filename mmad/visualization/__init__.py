from .heatmap import colorize, draw_sample_panel, overlay

__all__ = ['colorize', 'draw_sample_panel', 'overlay']
