"""Golden values for tessera-nn's layer engine, computed with PyTorch on the CPU in float64.

Network (names as tessera-nn's Sequential and PyTorch's state_dict):
  conv1 Conv2d(3, 4, 3, stride 1, padding 1) -> bn BatchNorm2d(4) -> relu -> pool MaxPool2d(2)
  -> conv2 Conv2d(4, 6, 3, stride 2, padding 1) -> relu2 -> gap (mean over H, W) -> fc Linear(6, 3)
Input (5, 3, 8, 8); softmax cross-entropy with hard labels, mean over the batch.

Outputs (tests/data/conv/*.npy, float64 unless noted):
  x, labels (int64), params (flat, state_dict order without BN buffers), buffers (flat
  running_mean then running_var, before the pass), logits_train, loss, grad (flat),
  buffers_after (after the training-mode pass), logits_eval (eval mode, after the pass),
  sgd_params (one SGD step: lr 0.1, momentum 0.9, weight decay 1e-3),
  adam_params (one Adam step: lr 0.01, default betas and eps, weight decay 1e-3),
  adamw_params (one AdamW step: lr 0.01, weight decay 0.1).

Run from the crate root: python3 tests/make_conv_fixtures.py
"""
import copy
import os

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conv")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=1, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv1(x))))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


def make():
    net = Net()
    with torch.no_grad():
        # Non-trivial affine and running statistics, so every term of batch norm counts.
        net.bn.weight.copy_(torch.tensor([1.2, 0.7, -0.9, 1.5]))
        net.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.05]))
        net.bn.running_mean.copy_(torch.tensor([0.05, -0.1, 0.2, 0.0]))
        net.bn.running_var.copy_(torch.tensor([1.1, 0.9, 1.3, 0.8]))
    return net


def flat_params(net):
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()


def flat_buffers(net):
    return torch.cat([net.bn.running_mean, net.bn.running_var]).detach().numpy()


def main():
    x = torch.randn(5, 3, 8, 8)
    labels = torch.tensor([0, 2, 1, 1, 0])
    base = make()
    net = copy.deepcopy(base)
    np.save(os.path.join(OUT, "x.npy"), x.numpy())
    np.save(os.path.join(OUT, "labels.npy"), labels.numpy().astype(np.int64))
    np.save(os.path.join(OUT, "params.npy"), flat_params(net))
    np.save(os.path.join(OUT, "buffers.npy"), flat_buffers(net))

    net.train()
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
    np.save(os.path.join(OUT, "logits_train.npy"), logits.detach().numpy())
    np.save(os.path.join(OUT, "loss.npy"), np.array(loss.item()))
    np.save(os.path.join(OUT, "grad.npy"), grad)
    np.save(os.path.join(OUT, "buffers_after.npy"), flat_buffers(net))
    net.eval()
    with torch.no_grad():
        np.save(os.path.join(OUT, "logits_eval.npy"), net(x).numpy())

    for name, make_opt in [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3)),
        ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    ]:
        net = copy.deepcopy(base)
        net.train()
        opt = make_opt(net.parameters())
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), labels).backward()
        opt.step()
        np.save(os.path.join(OUT, f"{name}_params.npy"), flat_params(net))


if __name__ == "__main__":
    main()
