"""Print a config with its ``_base_`` files merged and the command-line overrides applied.

``python tools/analysis_tools/print_config.py CONFIG [--cfg-options KEY=VALUE ...]``.
"""
import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action='extend', metavar='KEY=VALUE',
                        help='override settings of the config, e.g. train_cfg.max_epochs=10')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from mmad.utils import ConfigError
    from mmad.utils.tool_args import load_tool_config

    try:
        cfg = load_tool_config(args.config, args.cfg_options)
    except ConfigError as error:
        sys.exit(f'print_config.py: error: {error}')
    print(f'Config: {args.config}\n{cfg.pretty_text}')


if __name__ == '__main__':
    main()
