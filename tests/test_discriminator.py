"""The multi-scale discriminator of section 3.2."""

import torch

from models import Discriminator, MultiScaleDiscriminator


def test_nine_convs_with_batchnorm_on_the_seven_inner_ones():
    disc = Discriminator()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 9 and len(norms) == 7
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512, 1]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 1, 1]
    assert [c.kernel_size[0] for c in convs] == [3, 4, 3, 4, 3, 4, 3, 3, 3]
    slopes = {m.negative_slope for m in disc.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.01}


def test_three_independent_discriminators_on_pooled_inputs():
    msd = MultiScaleDiscriminator().eval()
    assert len(msd.discriminators) == 3
    assert msd.discriminators[0].body[0].weight is not msd.discriminators[1].body[0].weight
    outs = msd(torch.rand(2, 3, 96, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 1, 12, 12), (2, 1, 6, 6), (2, 1, 3, 3)]
    assert all(((o >= 0) & (o <= 1)).all() for o in outs)
