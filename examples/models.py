"""Example models for `leaky diagnose` (see the README).

leaky diagnose examples/models.py:make_model --input-shape 1,28,28
leaky diagnose examples/models.py:deep_sigmoid --input-shape 64
leaky memory examples/models.py:dcgan_discriminator --input-shape 3,64,64
"""

import torch
from torch import nn


def make_model() -> nn.Module:
    """A small ReLU CNN for 28x28 images, with some units forced to be dead."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 14 * 14, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    with torch.no_grad():
        model[4].bias[:8] = -50.0  # eight hidden units that can never fire
    return model


def deep_sigmoid() -> nn.Module:
    """Twenty sigmoid layers at PyTorch's default initialisation: the gradient vanishes."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(20):
        layers += [nn.Linear(64, 64), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(64, 10))


def dcgan_discriminator() -> nn.Module:
    """Radford et al.'s DCGAN discriminator for 64x64 images, as pytorch/examples writes it.

    No BatchNorm on the input layer; LeakyReLU(0.2, inplace=True) throughout.

    leaky memory examples/models.py:dcgan_discriminator --input-shape 3,64,64
    """
    torch.manual_seed(0)
    width = 64
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
    ]
    for scale in (1, 2, 4):
        layers += [
            nn.Conv2d(width * scale, width * scale * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width * scale * 2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
    layers += [nn.Conv2d(width * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def transformer_encoder() -> nn.Module:
    """A stock PyTorch encoder: 4 layers of d_model 128, 4 heads, GELU feed-forward of 512.

    leaky memory examples/models.py:transformer_encoder --input-shape 32,128
    """
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        128, 4, 512, activation="gelu", batch_first=True, dropout=0.1
    )
    return nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)


class _Down(nn.Sequential):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.LeakyReLU(0.1, inplace=True),
        )


class SmallUNet(nn.Module):
    """A two-level U-Net with in-place LeakyReLU(0.1): skip connections by concatenation.

    leaky memory examples/models.py:SmallUNet --input-shape 1,64,64
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down1, self.down2 = _Down(1, 32), _Down(32, 64)
        self.pool = nn.MaxPool2d(2)
        self.bottom = _Down(64, 128)
        self.up2 = nn.ConvTranspose2d(128, 64, 2, stride=2)
        self.merge2 = _Down(128, 64)
        self.up1 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.merge1 = _Down(64, 32)
        self.head = nn.Conv2d(32, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder, bottom, decoder with the encoder's features concatenated."""
        first = self.down1(x)
        second = self.down2(self.pool(first))
        bottom = self.bottom(self.pool(second))
        up = self.merge2(torch.cat([self.up2(bottom), second], dim=1))
        up = self.merge1(torch.cat([self.up1(up), first], dim=1))
        return self.head(up)
