"""Read PNG and TIFF files through mmengine's file backends, with errors that name the file."""
import io

import cv2
import mmengine.fileio
import numpy as np
import tifffile


def read_bytes(path: str, backend_args: dict | None = None) -> bytes:
    """Read a whole file.

    Args:
        path: File path or URI understood by ``mmengine.fileio``.
        backend_args: Arguments of the file backend; None for the local disk.

    Returns:
        The file content.

    Raises:
        FileNotFoundError: The file does not exist.
        OSError: The file exists but cannot be read.
        ValueError: The file is empty.
    """
    try:
        content = mmengine.fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} does not exist') from None
    except OSError as error:
        raise OSError(f'cannot read {path}: {error}') from None
    if not content:
        raise ValueError(f'{path} is empty')
    return content


def read_png(path: str, flags: int, backend_args: dict | None = None) -> np.ndarray:
    """Decode a PNG (or any image OpenCV reads) with ``cv2.imdecode``.

    Args:
        path: File path.
        flags: ``cv2.IMREAD_*`` flags.
        backend_args: Arguments of the file backend.

    Returns:
        The decoded array, channels in OpenCV's BGR order.

    Raises:
        ValueError: The file is empty, truncated or not an image.
    """
    image = cv2.imdecode(np.frombuffer(read_bytes(path, backend_args), dtype=np.uint8), flags)
    if image is None:
        raise ValueError(f'{path} is not a readable PNG image: the file is corrupt, truncated or of another format')
    return image


def read_tiff(path: str, backend_args: dict | None = None) -> np.ndarray:
    """Decode a TIFF file with tifffile.

    Args:
        path: File path.
        backend_args: Arguments of the file backend.

    Returns:
        The decoded array.

    Raises:
        ValueError: The file is empty, truncated or not a TIFF.
    """
    content = read_bytes(path, backend_args)
    try:
        return tifffile.imread(io.BytesIO(content))
    except Exception as error:  # tifffile raises many types on damaged files; report all of them as one
        raise ValueError(f'{path} is not a readable TIFF file (corrupt, truncated or of another format): '
                         f'{type(error).__name__}: {error}') from None
