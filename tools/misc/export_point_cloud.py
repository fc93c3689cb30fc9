"""Export an MVTec 3D-AD sample (xyz tiff + optional rgb png) as a coloured .ply/.pcd for a 3D viewer.

``python tools/misc/export_point_cloud.py XYZ_TIFF OUT.ply [--rgb RGB_PNG]``
"""
import argparse

from mmad.datasets.transforms import LoadRGBFromFile, LoadXYZFromFile
from mmad.utils.point_cloud_io import save_point_cloud


def main() -> None:
    parser = argparse.ArgumentParser(description='Export an organised point cloud as .ply/.pcd')
    parser.add_argument('xyz', help='xyz tiff (H x W x 3 float32, metres)')
    parser.add_argument('out', help='output file (.ply, .pcd or .xyz)')
    parser.add_argument('--rgb', help='rgb png of the same sample, to colour the points')
    args = parser.parse_args()
    xyz = LoadXYZFromFile().transform(dict(xyz_path=args.xyz))['xyz']
    rgb = LoadRGBFromFile().transform(dict(rgb_path=args.rgb))['rgb'] if args.rgb else None
    count = save_point_cloud(args.out, xyz, rgb)
    print(f'Wrote {count} points to {args.out}')


if __name__ == '__main__':
    main()
