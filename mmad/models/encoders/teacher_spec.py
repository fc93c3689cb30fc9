"""The teacher contract: everything a frozen teacher tells the student parts, as one frozen dataclass.

A teacher encoder exposes ``spec`` (a :class:`TeacherSpec`); CRD fills in the shapes of the OCBE, the reverse
decoder, the bottleneck projection (BP) and the inverted bottleneck projection (IBP) from it and from nothing else.

Two kinds of fields:

* the feature levels (``out_channels``, ``strides``): what the student must reproduce, fixed by the teacher;
* the default student layout (``block_type``, ``decoder_blocks``, ``ocbe_blocks``, ``width_factor``): how the
  student is built unless the config says otherwise (``decoder=dict(stage_blocks=...)``,
  ``ocbe=dict(out_blocks=...)``, ...). A ResNet teacher gets RD's mirror image of itself; any other CNN gets
  :meth:`TeacherSpec.default_student`: basic residual blocks, 2 per decoder stage, 2 in the OCBE.

Example:
    >>> spec = TeacherSpec.default_student(out_channels=(24, 40, 112), strides=(4, 8, 16))
    >>> spec.decoder_blocks, spec.ocbe_blocks, spec.ocbe_channels
    ((2, 2, 2), 2, 224)
"""
from __future__ import annotations

from dataclasses import dataclass

STUDENT_BLOCK_TYPES = ('basic', 'bottleneck')
DEFAULT_STUDENT_BLOCKS = 2


@dataclass(frozen=True)
class TeacherSpec:
    """What the student parts need to know about a teacher.

    Attributes:
        out_channels: Channels of each returned feature level, shallow to deep, e.g. ``(256, 512, 1024)``.
        strides: Downsampling factor of each level, shallow to deep, each twice the previous, e.g. ``(4, 8, 16)``.
        block_type: Residual block of the student (``'basic'`` or ``'bottleneck'``), for the OCBE's residual
            stage and the decoder's upsampling blocks.
        decoder_blocks: Residual blocks of each decoder stage, deep to shallow (``ReverseDecoder.stage_blocks``).
            RD reuses a ResNet teacher's per-stage counts in their shallow-to-deep order: ``(3, 4, 6)`` for WRN50.
        ocbe_blocks: Residual blocks of the OCBE's stage, which halves the deepest level's resolution and gives
            ``2 * out_channels[-1]`` channels (RD: the teacher's next stage, 3 for WRN50's layer4).
        width_factor: Bottleneck inner width of the student relative to a plain ResNet (2.0 for wide ResNets).
    """

    out_channels: tuple[int, ...]
    strides: tuple[int, ...]
    block_type: str
    decoder_blocks: tuple[int, ...]
    ocbe_blocks: int
    width_factor: float = 1.0

    def __post_init__(self) -> None:
        for name in ('out_channels', 'strides', 'decoder_blocks'):
            object.__setattr__(self, name, tuple(int(value) for value in getattr(self, name)))
        levels = len(self.out_channels)
        if not levels or len(self.strides) != levels or len(self.decoder_blocks) != levels:
            raise ValueError(f'TeacherSpec: out_channels {self.out_channels}, strides {self.strides} and '
                             f'decoder_blocks {self.decoder_blocks} must have one entry per level (at least one).')
        if any(deep != 2 * shallow for shallow, deep in zip(self.strides, self.strides[1:])):
            raise ValueError(f'TeacherSpec: each stride must be twice the previous one, got {self.strides}.')
        if self.block_type not in STUDENT_BLOCK_TYPES:
            raise ValueError(f'TeacherSpec: block_type must be one of {STUDENT_BLOCK_TYPES}, got {self.block_type!r}.')
        if self.block_type == 'basic' and self.width_factor != 1:
            raise ValueError(f'TeacherSpec: basic blocks have width_factor 1, got {self.width_factor}.')
        if self.ocbe_blocks < 1 or min(self.decoder_blocks) < 1:
            raise ValueError(f'TeacherSpec: every student stage needs a block, got decoder_blocks '
                             f'{self.decoder_blocks} and ocbe_blocks {self.ocbe_blocks}.')

    @classmethod
    def default_student(cls, out_channels: tuple[int, ...], strides: tuple[int, ...]) -> TeacherSpec:
        """Spec of a teacher that is not a ResNet: basic blocks, 2 per decoder stage and 2 in the OCBE."""
        return cls(out_channels=out_channels, strides=strides, block_type='basic',
                   decoder_blocks=(DEFAULT_STUDENT_BLOCKS, ) * len(out_channels), ocbe_blocks=DEFAULT_STUDENT_BLOCKS)

    @property
    def num_levels(self) -> int:
        """Number of feature levels."""
        return len(self.out_channels)

    @property
    def ocbe_channels(self) -> int:
        """Channels of the one-class embedding (the OCBE output, the decoder input): twice the deepest level's."""
        return 2 * self.out_channels[-1]
