"""Graphonomy: DeepLabv3+ (aligned Xception, output stride 16) with graph reasoning over body parts.

Two released checkpoints (Gaoyiminggithub/Graphonomy, networks/deeplab_xception_transfer.py and
networks/deeplab_xception_universal.py), told apart by their tensor names:

- ``transfer`` (``inference.pth``, what exp/inference/inference.py runs): a 7-node Pascal source
  graph transferred into the 20-node CIHP target graph
  (``deeplab_xception_transfer_projection_savemem``).
- ``universal`` (the README's "universal trained model"): three graphs (Pascal 7, ATR 18, CIHP 20)
  exchanging information six ways (``deeplab_xception_end2end_3d``); we run its CIHP (target)
  branch, which gives the same 20 labels.

Module names are the released ones; widths are read from tensor shapes. Facts the forward
reproduces (the originals' quirks included):

- Xception blocks that start with an in-place ReLU overwrite their input, so the residual branch
  adds ``relu(input)``; block2 also returns its pre-ReLU ``rep`` output as the low-level feature.
- ``SeparableConv2d_same`` pads "same" explicitly and has no activation between depthwise and
  pointwise; the ASPP/decoder/exit separable convs pad by their dilation and ReLU after both BNs.
- Transfer model: ``source_graph3`` is computed with ``source_graph_conv2`` (``source_graph_conv3``
  is loaded but unused); ``fc_graph`` is shared by the three fusion steps; the stored
  ``transpose_graph.adj`` is unused, the transfer matrix is passed in and normalised as
  ``softmax(relu(adj))``.
- Universal model: each of the three rounds uses ``*_graph_conv1`` (the middle graph uses the
  target's ``target_graph_conv1``); the ``middle_graph_conv*`` weights are loaded but unused.
- The adjacency matrices are constants of the released code (networks/graph.py): the CIHP, Pascal
  and ATR part graphs normalised as D^-1/2 (A + I) D^-1/2, and the word-embedding similarity
  matrices between label sets. They live in non-persistent buffers filled by :func:`materialize`.
- All upsampling is bilinear with ``align_corners=True``; BatchNorm eps 1e-5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OPTIONAL_KEYS: tuple[str, ...] = ("num_batches_tracked",)
ASPP_RATES = (6, 12, 18)  # aspp2..aspp4 at output stride 16 (aspp1 is the 1x1 branch)
EXIT_DILATION = 2  # exit-flow separable convs at output stride 16
N_SOURCE, N_MIDDLE = 7, 18  # Pascal parts, ATR labels


# ----------------------------------------------------------------------------- Xception trunk


def _same_pad(x: torch.Tensor, dilation: int, kernel: int = 3) -> torch.Tensor:
    total = kernel + (kernel - 1) * (dilation - 1) - 1
    beg = total // 2
    return F.pad(x, (beg, total - beg, beg, total - beg))


class SeparableConvSame(nn.Module):
    """Explicit "same" padding, depthwise + BN, pointwise + BN, no activation."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, 0, dilation, groups=cin, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise_bn(self.depthwise(_same_pad(x, self.depthwise.dilation[0])))
        return self.pointwise_bn(self.pointwise(x))


class SeparableConvReLU(nn.Module):
    """Padding = dilation, depthwise + BN + ReLU, pointwise + BN + ReLU (ASPP, decoder, exit flow)."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, 1, dilation, dilation, groups=cin, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.depthwise_bn(self.depthwise(x)))
        return F.relu(self.pointwise_bn(self.pointwise(x)))


def _rep(convs: list[SeparableConvSame], start_with_relu: bool) -> nn.Sequential:
    """The original's ``rep`` Sequential: a ReLU before every separable conv (indices matter for the names)."""
    layers: list[nn.Module] = []
    for conv in convs:
        layers += [nn.ReLU(), conv]
    return nn.Sequential(*(layers if start_with_relu else layers[1:]))


class XceptionBlock(nn.Module):
    """Xception ``Block``: separable convs with a projected (1x1 conv + BN) or identity skip."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int = 1, dilation: int = 1,
                 start_with_relu: bool = True, grow_first: bool = True, is_last: bool = False) -> None:
        super().__init__()
        if cout != cin or stride != 1:
            # the original's skip has stride 2 whenever it exists, except in the last block
            self.skip = nn.Conv2d(cin, cout, 1, stride=1 if is_last else 2, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        if grow_first:
            widths = [(cin, cout)] + [(cout, cout)] * (reps - 1)
        else:
            widths = [(cin, cin)] * (reps - 1) + [(cin, cout)]
        convs = [SeparableConvSame(a, b, 1, dilation) for a, b in widths]
        if stride != 1:
            convs.append(SeparableConvSame(cout, cout, stride, dilation))
        if is_last:
            convs.append(SeparableConvSame(cout, cout, 1, dilation))
        self.start_with_relu = start_with_relu
        self.rep = _rep(convs, start_with_relu)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.rep(inp)
        if self.start_with_relu:  # the original's in-place ReLU rewrote the input the skip reads
            inp = F.relu(inp)
        skip = inp if self.skip is None else self.skipbn(self.skip(inp))
        return x + skip


class XceptionBlock2(nn.Module):
    """Entry block 2: also returns its pre-ReLU ``rep`` output as the low-level feature."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.skipbn = nn.BatchNorm2d(cout)
        self.rep = _rep([SeparableConvSame(cin, cout), SeparableConvSame(cout, cout)], True)
        self.block2_lastconv = nn.Sequential(nn.ReLU(), SeparableConvSame(cout, cout, stride))

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.rep(inp)
        x = self.block2_lastconv(low)
        return x + self.skipbn(self.skip(F.relu(inp))), low


class Xception(nn.Module):
    """Modified aligned Xception at output stride 16 (entry 3 blocks, ``middle`` blocks, exit)."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        e1, e2 = c["entry"]
        b1, b2, b3, b20 = c["block_widths"]
        self.conv1 = nn.Conv2d(3, e1, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(e1)
        self.conv2 = nn.Conv2d(e1, e2, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(e2)
        self.block1 = XceptionBlock(e2, b1, reps=2, stride=2, start_with_relu=False)
        self.block2 = XceptionBlock2(b1, b2, stride=2)
        self.block3 = XceptionBlock(b2, b3, reps=2, stride=2)
        self.n_middle = int(c["middle_blocks"])
        for i in range(self.n_middle):
            setattr(self, f"block{4 + i}", XceptionBlock(b3, b3, reps=3))
        last = 4 + self.n_middle
        setattr(self, f"block{last}", XceptionBlock(b3, b20, reps=2, grow_first=False, is_last=True))
        x3, x4, x5 = c["exit"]
        self.conv3 = SeparableConvReLU(b20, x3, EXIT_DILATION)
        self.conv4 = SeparableConvReLU(x3, x4, EXIT_DILATION)
        self.conv5 = SeparableConvReLU(x4, x5, EXIT_DILATION)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.block1(x)
        x, low = self.block2(x)
        x = self.block3(x)
        for i in range(4, 4 + self.n_middle + 1):
            x = getattr(self, f"block{i}")(x)
        # conv3..conv5 end with ReLU already; the original's extra ReLU after each is a no-op
        return self.conv5(self.conv4(self.conv3(x))), low


class ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ASPPConv1x1(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.atrous_convolution = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_convolution(x)))


class SeparableBranch(nn.Module):
    """``ASPP_module`` / ``Decoder_module``: one :class:`SeparableConvReLU` under the released name."""

    def __init__(self, cin: int, cout: int, dilation: int) -> None:
        super().__init__()
        self.atrous_convolution = SeparableConvReLU(cin, cout, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.atrous_convolution(x)


def _up(x: torch.Tensor, size: Any) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class DeepLabXception(nn.Module):
    """DeepLabv3+ trunk and decoder; :meth:`features` gives the decoder features the graphs read."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.xception_features = Xception(c)
        top, aspp, low, dec = c["exit"][2], int(c["aspp"]), int(c["low"]), int(c["decoder"])
        self.aspp1 = ASPPConv1x1(top, aspp)
        self.aspp2 = SeparableBranch(top, aspp, ASPP_RATES[0])
        self.aspp3 = SeparableBranch(top, aspp, ASPP_RATES[1])
        self.aspp4 = SeparableBranch(top, aspp, ASPP_RATES[2])
        self.global_avg_pool = ASPPPooling(top, aspp)
        self.concat_projection_conv1 = nn.Conv2d(5 * aspp, aspp, 1, bias=False)
        self.concat_projection_bn1 = nn.BatchNorm2d(aspp)
        self.feature_projection_conv1 = nn.Conv2d(c["block_widths"][1], low, 1, bias=False)
        self.feature_projection_bn1 = nn.BatchNorm2d(low)
        self.decoder = nn.Sequential(SeparableBranch(aspp + low, dec, 1), SeparableBranch(dec, dec, 1))
        self.semantic = nn.Conv2d(int(c["graph_out"]), int(c["n_classes"]), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x, low = self.xception_features(x)
        pooled = self.global_avg_pool(x)
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        x = torch.cat(branches + [_up(pooled, branches[3].shape[2:])], 1)
        x = F.relu(self.concat_projection_bn1(self.concat_projection_conv1(x)))
        x = _up(x, low.shape[2:])
        low = F.relu(self.feature_projection_bn1(self.feature_projection_conv1(low)))
        return self.decoder(torch.cat([x, low], 1))


# ----------------------------------------------------------------------------- graph operations


class FeaturesToGraph(nn.Module):
    """``Featuremaps_to_Graph``: soft-assign pixels to nodes, pool projected features per node."""

    def __init__(self, channels: int, hidden: int, nodes: int) -> None:
        super().__init__()
        self.pre_fea = nn.Parameter(torch.empty(channels, nodes))
        self.weight = nn.Parameter(torch.empty(channels, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(2).transpose(1, 2)  # B x HW x C
        assign = F.softmax(pixels @ self.pre_fea, dim=-1)
        return F.relu(assign.transpose(1, 2) @ (pixels @ self.weight))  # B x nodes x hidden


class GraphConv(nn.Module):
    """``GraphConvolution`` without bias: ``adj @ (x @ W)``, optional ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout))

    def forward(self, x: torch.Tensor, adj: torch.Tensor | None = None, relu: bool = True) -> torch.Tensor:
        y = x @ self.weight
        if adj is not None:
            y = adj @ y
        return F.relu(y) if relu else y


class GraphTransfer(nn.Module):
    """``Graph_trans``: moves node features between label sets with ``softmax(relu(adj))``.

    ``adj`` is stored in the released file but the forward always receives the constant matrix.
    """

    def __init__(self, hidden: int, begin_nodes: int, end_nodes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden, hidden))
        self.adj = nn.Parameter(torch.empty(end_nodes, begin_nodes))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return F.relu(F.softmax(F.relu(adj), dim=-1) @ (x @ self.weight))


class GraphToFeatures(nn.Module):
    """``Graph_to_Featuremaps_savemem``: project node features back onto every pixel."""

    def __init__(self, channels: int, out_channels: int, hidden: int) -> None:
        super().__init__()
        self.node_fea_for_res = nn.Parameter(torch.empty(channels, 1))
        self.node_fea_for_hidden = nn.Parameter(torch.empty(hidden, 1))
        self.weight = nn.Parameter(torch.empty(hidden, out_channels))

    def forward(self, graph: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        pixels = x.flatten(2).transpose(1, 2)  # B x HW x C
        # per-pixel score + per-node score, softmax over nodes (as the original, without expanding)
        scores = pixels @ self.node_fea_for_res + (graph @ self.node_fea_for_hidden).transpose(1, 2)
        out = F.softmax(scores, dim=-1) @ (graph @ self.weight)  # B x HW x C_out
        return F.relu(out.transpose(1, 2).reshape(b, -1, h, w))


def _skip_conv(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())


def similarity_transfer(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each target node takes a softmax(cosine similarity)-weighted mix of the source nodes."""
    sim = F.normalize(target, p=2, dim=-1) @ F.normalize(source, p=2, dim=-1).transpose(-1, -2)
    return F.softmax(sim, dim=-1) @ source


# ----------------------------------------------------------------------------- the two networks


class GraphonomyTransfer(DeepLabXception):
    """``deeplab_xception_transfer_projection_savemem`` (inference.pth): Pascal graph -> CIHP graph.

    ``forward(x)`` returns CIHP-20 logits at the input size; the adjacency arguments default to the
    released constants (the fixture passes them explicitly, as inference.py does).
    """

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__(c)
        dec, hidden, n, ns = int(c["decoder"]), int(c["hidden"]), int(c["n_classes"]), int(c["source_classes"])
        self.target_featuremap_2_graph = FeaturesToGraph(dec, hidden, n)
        self.target_graph_conv1 = GraphConv(hidden, hidden)
        self.target_graph_conv2 = GraphConv(hidden, hidden)
        self.target_graph_conv3 = GraphConv(hidden, hidden)
        self.target_graph_2_fea = GraphToFeatures(dec, int(c["graph_out"]), hidden)
        self.target_skip_conv = _skip_conv(dec)
        self.source_featuremap_2_graph = FeaturesToGraph(dec, hidden, ns)
        self.source_graph_conv1 = GraphConv(hidden, hidden)
        self.source_graph_conv2 = GraphConv(hidden, hidden)
        self.source_graph_conv3 = GraphConv(hidden, hidden)  # in the file, unused by the forward
        self.transpose_graph = GraphTransfer(hidden, ns, n)
        self.fc_graph = GraphConv(3 * hidden, hidden)
        _register_adjacency(self, ("target", n, n), ("source", ns, ns), ("source_to_target", n, ns))

    def forward(self, x: torch.Tensor, adj_target: torch.Tensor | None = None, adj_source: torch.Tensor | None = None,
                adj_transfer: torch.Tensor | None = None) -> torch.Tensor:
        adj_t, adj_s, adj_st = _adjacency(self, x, target=adj_target, source=adj_source, source_to_target=adj_transfer)
        feats = self.features(x)
        s1 = self.source_graph_conv1(self.source_featuremap_2_graph(feats), adj_s)
        s2 = self.source_graph_conv2(s1, adj_s)
        s3 = self.source_graph_conv2(s2, adj_s)  # sic: conv2 twice, as released
        graph = self.target_featuremap_2_graph(feats)
        rounds = ((s1, self.target_graph_conv1), (s2, self.target_graph_conv2), (s3, self.target_graph_conv3))
        for source, conv in rounds:
            mixed = torch.cat([graph, similarity_transfer(source, graph), self.transpose_graph(source, adj_st)], -1)
            graph = conv(self.fc_graph(mixed), adj_t)
        out = self.target_skip_conv(feats) + self.target_graph_2_fea(graph, feats)
        return _up(self.semantic(out), x.shape[2:])


class GraphonomyUniversal(DeepLabXception):
    """``deeplab_xception_end2end_3d`` (universal model); ``forward`` runs its CIHP (target) branch."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__(c)
        dec, hidden, out = int(c["decoder"]), int(c["hidden"]), int(c["graph_out"])
        n, ns, nm = int(c["n_classes"]), int(c["source_classes"]), int(c["middle_classes"])
        for name, nodes in (("source", ns), ("target", n), ("middle", nm)):
            setattr(self, f"{name}_featuremap_2_graph", FeaturesToGraph(dec, hidden, nodes))
            for i in (1, 2, 3):  # only *_graph_conv1 is used (see module notes)
                setattr(self, f"{name}_graph_conv{i}", GraphConv(hidden, hidden))
            setattr(self, f"{name}_graph_2_fea", GraphToFeatures(dec, out, hidden))
            setattr(self, f"{name}_skip_conv", _skip_conv(dec))
        self.source_semantic = nn.Conv2d(out, ns, 1)
        self.middle_semantic = nn.Conv2d(out, nm, 1)
        # released (begin, end) node counts; middle2target is declared middle -> source size
        for name, begin, end in (("source2target", ns, n), ("target2source", n, ns), ("middle2source", nm, ns),
                                 ("middle2target", nm, ns), ("source2middle", ns, nm), ("target2middle", n, nm)):
            setattr(self, f"transpose_graph_{name}", GraphTransfer(hidden, begin, end))
        for name in ("source", "target", "middle"):
            setattr(self, f"fc_graph_{name}", GraphConv(5 * hidden, hidden))
        _register_adjacency(self, ("target", n, n), ("source", ns, ns), ("middle", nm, nm),
                            ("source_to_target", n, ns), ("source_to_middle", nm, ns), ("target_to_middle", nm, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        names = ("target", "source", "middle", "source_to_target", "source_to_middle", "target_to_middle")
        adj_t, adj_s, adj_m, s2t, s2m, t2m = _adjacency(self, x, **dict.fromkeys(names))
        t2s, m2s, m2t = s2t.transpose(0, 1), s2m.transpose(0, 1), t2m.transpose(0, 1)
        feats = self.features(x)
        s = self.source_featuremap_2_graph(feats)
        t = self.target_featuremap_2_graph(feats)
        m = self.middle_featuremap_2_graph(feats)
        for _ in range(3):
            s = self.source_graph_conv1(s, adj_s)
            t = self.target_graph_conv1(t, adj_t)
            m = self.target_graph_conv1(m, adj_m)  # sic: the target's conv, as released
            s, t, m = (
                self.fc_graph_source(torch.cat([
                    s, similarity_transfer(t, s), self.transpose_graph_target2source(t, t2s),
                    similarity_transfer(m, s), self.transpose_graph_middle2source(m, m2s)], -1)),
                self.fc_graph_target(torch.cat([
                    t, similarity_transfer(s, t), self.transpose_graph_source2target(s, s2t),
                    similarity_transfer(m, t), self.transpose_graph_middle2target(m, m2t)], -1)),
                self.fc_graph_middle(torch.cat([
                    m, similarity_transfer(s, m), self.transpose_graph_source2middle(s, s2m),
                    similarity_transfer(t, m), self.transpose_graph_target2middle(t, t2m)], -1)),
            )
        out = self.target_skip_conv(feats) + self.target_graph_2_fea(t, feats)
        return _up(self.semantic(out), x.shape[2:])


def _register_adjacency(model: nn.Module, *specs: tuple[str, int, int]) -> None:
    for name, rows, cols in specs:
        model.register_buffer(f"adj_{name}", torch.empty(rows, cols), persistent=False)


def _adjacency(model: nn.Module, x: torch.Tensor, **given: torch.Tensor | None) -> list[torch.Tensor]:
    """The given matrices (any leading singleton dims, as inference.py passes them) or the constants."""
    out = []
    for name, value in given.items():
        adj = getattr(model, f"adj_{name}") if value is None else value
        out.append(adj.reshape(adj.shape[-2:]).to(device=x.device, dtype=x.dtype))
    return out


# ----------------------------------------------------------------------------- contract


def build(config: Mapping[str, Any]) -> nn.Module:
    variant = config.get("variant", "transfer")
    if variant == "transfer":
        return GraphonomyTransfer(config)
    if variant == "universal":
        return GraphonomyUniversal(config)
    raise ValueError(f"unknown Graphonomy variant {variant!r} (transfer or universal)")


def config_from_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    def out(key: str) -> int:
        return int(state[key].shape[0])

    xf = "xception_features."
    blocks = {int(k[len(xf) + 5:].split(".")[0]) for k in state if k.startswith(xf + "block")}
    last = max(blocks)
    config = {
        "variant": "universal" if "fc_graph_target.weight" in state else "transfer",
        "entry": [out(xf + "conv1.weight"), out(xf + "conv2.weight")],
        "block_widths": [out(f"{xf}block{i}.skip.weight") for i in (1, 2, 3, last)],
        "middle_blocks": last - 4,
        "exit": [out(f"{xf}conv{i}.pointwise.weight") for i in (3, 4, 5)],
        "aspp": out("aspp1.atrous_convolution.weight"),
        "low": out("feature_projection_conv1.weight"),
        "decoder": out("decoder.1.atrous_convolution.pointwise.weight"),
        "graph_out": int(state["target_graph_2_fea.weight"].shape[1]),
        "hidden": int(state["target_featuremap_2_graph.weight"].shape[1]),
        "n_classes": out("semantic.weight"),
        "source_classes": int(state["source_featuremap_2_graph.pre_fea"].shape[1]),
    }
    if config["variant"] == "universal":
        config["middle_classes"] = int(state["middle_featuremap_2_graph.pre_fea"].shape[1])
    return config


def materialize(model: nn.Module) -> None:
    """Fill the adjacency buffers with the released constants."""
    constants = adjacency_constants()
    for name, buf in list(model.named_buffers()):
        if name.startswith("adj_"):
            value = constants[name[len("adj_"):]]
            if tuple(value.shape) != tuple(buf.shape):
                raise ValueError(f"Graphonomy {name}: constant {tuple(value.shape)} vs network {tuple(buf.shape)}")
            setattr(model, name, value)


# ----------------------------------------------------------------------------- released constants


def normalized_adjacency(neighbours: Mapping[int, tuple[int, ...]]) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the undirected graph given as adjacency lists (graph.preprocess_adj).

    A self-loop in the lists counts once in A, so such a node has 2 on the diagonal after + I.
    """
    n = len(neighbours)
    a = torch.zeros(n, n, dtype=torch.float64)
    for i, js in neighbours.items():
        for j in js:
            a[i, j] = a[j, i] = 1.0
    a += torch.eye(n, dtype=torch.float64)
    d = a.sum(1).pow(-0.5)
    return (d[:, None] * a * d[None, :]).float()


def adjacency_constants() -> dict[str, torch.Tensor]:
    """Every matrix the forwards take, named by the buffers (``adj_<name>``), float32."""

    def t(rows: tuple[tuple[float, ...], ...]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float32)

    return {
        "target": normalized_adjacency(CIHP_GRAPH),
        "source": normalized_adjacency(PASCAL_GRAPH),
        "middle": normalized_adjacency(ATR_GRAPH),
        "source_to_target": t(PASCAL_BY_CIHP_SIMILARITY).T.contiguous(),  # 20 x 7
        "source_to_middle": t(PASCAL_BY_ATR_SIMILARITY).T.contiguous(),  # 18 x 7
        "target_to_middle": t(CIHP_BY_ATR_SIMILARITY).T.contiguous(),  # 18 x 20
    }


# Part graphs of networks/graph.py (node -> neighbours; undirected).
PASCAL_GRAPH = {0: (0,), 1: (1, 2), 2: (1, 2, 3, 5), 3: (2, 3, 4), 4: (3, 4), 5: (2, 5, 6), 6: (5, 6)}
CIHP_GRAPH = {
    0: (), 1: (2, 13), 2: (1, 13), 3: (14, 15), 4: (13,), 5: (6, 7, 9, 10, 11, 12, 14, 15),
    6: (5, 7, 10, 11, 14, 15, 16, 17), 7: (5, 6, 9, 10, 11, 12, 14, 15), 8: (16, 17, 18, 19),
    9: (5, 7, 10, 16, 17, 18, 19), 10: (5, 6, 7, 9, 11, 12, 13, 14, 15, 16, 17), 11: (5, 6, 7, 10, 13),
    12: (5, 7, 10, 16, 17), 13: (1, 2, 4, 10, 11), 14: (3, 5, 6, 7, 10), 15: (3, 5, 6, 7, 10),
    16: (6, 8, 9, 10, 12, 18), 17: (6, 8, 9, 10, 12, 19), 18: (8, 9, 16), 19: (8, 9, 17),
}
ATR_GRAPH = {
    0: (), 1: (2, 11), 2: (1, 11), 3: (11,), 4: (5, 6, 7, 11, 14, 15, 17), 5: (4, 6, 7, 8, 12, 13),
    6: (4, 5, 7, 8, 9, 10, 12, 13), 7: (4, 11, 12, 13, 14, 15), 8: (5, 6), 9: (6, 12), 10: (6, 13),
    11: (1, 2, 3, 4, 7, 14, 15, 17), 12: (5, 6, 7, 9), 13: (5, 6, 7, 10), 14: (4, 7, 11, 16), 15: (4, 7, 11, 16),
    16: (14, 15), 17: (4, 11),
}
# Word-embedding similarities between label sets: <ROWS>_BY_<COLUMNS> (Pascal 7, CIHP 20, ATR 18 labels).
PASCAL_BY_CIHP_SIMILARITY = (  # 7x20, graph.cihp2pascal_nlp_adj
    (1.0, 0.35333052, 0.32727194, 0.17418084, 0.18757584, 0.40608522, 0.37503981, 0.35448462, 0.22598555,
     0.23893579, 0.33064262, 0.28923404, 0.27986573, 0.4211553, 0.36915778, 0.41377746, 0.32485771,
     0.37248222, 0.36865639, 0.41500332),
    (0.39615879, 0.46201529, 0.52321467, 0.30826114, 0.25669527, 0.54747773, 0.3670523, 0.3901983,
     0.27519473, 0.3433325, 0.52728509, 0.32771333, 0.34819325, 0.63882953, 0.68042925, 0.69368576,
     0.63395791, 0.65344337, 0.59538781, 0.6071375),
    (0.16373166, 0.21663339, 0.3053872, 0.28377612, 0.1372435, 0.4448808, 0.29479995, 0.31092595,
     0.22703953, 0.33983576, 0.75778818, 0.2619818, 0.37069392, 0.35184867, 0.49877512, 0.49979437,
     0.51853277, 0.52517541, 0.32517741, 0.32377309),
    (0.32687232, 0.38482461, 0.37693463, 0.41610834, 0.20415749, 0.76749079, 0.35139853, 0.3787411,
     0.28411737, 0.35155421, 0.58792618, 0.31141718, 0.40585111, 0.51189218, 0.82042737, 0.8342413,
     0.70732188, 0.72752501, 0.60327325, 0.61431337),
    (0.34069369, 0.34817292, 0.37525998, 0.36497069, 0.17841617, 0.69746208, 0.31731463, 0.34628951,
     0.25167277, 0.32072379, 0.56711286, 0.24894776, 0.37000453, 0.52600859, 0.82483993, 0.84966274,
     0.7033991, 0.73449378, 0.56649608, 0.58888791),
    (0.28477487, 0.35139564, 0.42742352, 0.41664321, 0.20004676, 0.78566833, 0.42237487, 0.41048549,
     0.37933812, 0.46542516, 0.62444759, 0.3274493, 0.49466009, 0.49314658, 0.71244233, 0.71497003,
     0.8234787, 0.83566589, 0.62597135, 0.62626812),
    (0.3011378, 0.31775977, 0.42922647, 0.36896257, 0.17597556, 0.72214655, 0.39162804, 0.38137872,
     0.34980296, 0.43818419, 0.60879174, 0.26762545, 0.46271161, 0.51150476, 0.72318109, 0.73678399,
     0.82620388, 0.84942166, 0.5943811, 0.60607602),
)
PASCAL_BY_ATR_SIMILARITY = (  # 7x18, graph.pascal2atr_nlp_adj
    (1.0, 0.35333052, 0.32727194, 0.18757584, 0.40608522, 0.27986573, 0.23893579, 0.27600672, 0.30964391,
     0.36865639, 0.41500332, 0.4211553, 0.32485771, 0.37248222, 0.36915778, 0.41377746, 0.32006291,
     0.28923404),
    (0.39615879, 0.46201529, 0.52321467, 0.25669527, 0.54747773, 0.34819325, 0.3433325, 0.26603942,
     0.45162929, 0.59538781, 0.6071375, 0.63882953, 0.63395791, 0.65344337, 0.68042925, 0.69368576,
     0.44354613, 0.32771333),
    (0.16373166, 0.21663339, 0.3053872, 0.1372435, 0.4448808, 0.37069392, 0.33983576, 0.26563416,
     0.35443504, 0.32517741, 0.32377309, 0.35184867, 0.51853277, 0.52517541, 0.49877512, 0.49979437,
     0.21750868, 0.2619818),
    (0.32687232, 0.38482461, 0.37693463, 0.20415749, 0.76749079, 0.40585111, 0.35155421, 0.28271333,
     0.52684576, 0.60327325, 0.61431337, 0.51189218, 0.70732188, 0.72752501, 0.82042737, 0.8342413,
     0.40137029, 0.31141718),
    (0.34069369, 0.34817292, 0.37525998, 0.17841617, 0.69746208, 0.37000453, 0.32072379, 0.27268885,
     0.47426719, 0.56649608, 0.58888791, 0.52600859, 0.7033991, 0.73449378, 0.82483993, 0.84966274,
     0.37830796, 0.24894776),
    (0.28477487, 0.35139564, 0.42742352, 0.20004676, 0.78566833, 0.49466009, 0.46542516, 0.32662614,
     0.55780359, 0.62597135, 0.62626812, 0.49314658, 0.8234787, 0.83566589, 0.71244233, 0.71497003,
     0.41223219, 0.3274493),
    (0.3011378, 0.31775977, 0.42922647, 0.17597556, 0.72214655, 0.46271161, 0.43818419, 0.3192333,
     0.50979216, 0.5943811, 0.60607602, 0.51150476, 0.82620388, 0.84942166, 0.72318109, 0.73678399,
     0.39259827, 0.26762545),
)
CIHP_BY_ATR_SIMILARITY = (  # 20x18, graph.cihp2atr_nlp_adj
    (1.0, 0.35333052, 0.32727194, 0.18757584, 0.40608522, 0.27986573, 0.23893579, 0.27600672, 0.30964391,
     0.36865639, 0.41500332, 0.4211553, 0.32485771, 0.37248222, 0.36915778, 0.41377746, 0.32006291,
     0.28923404),
    (0.35333052, 1.0, 0.39206695, 0.42143438, 0.4736689, 0.47139544, 0.51999208, 0.38354847, 0.45628529,
     0.46514124, 0.50083501, 0.4310595, 0.39371443, 0.4319752, 0.42938598, 0.46384034, 0.44833757,
     0.6153155),
    (0.32727194, 0.39206695, 1.0, 0.32836702, 0.52603065, 0.39543695, 0.3622627, 0.43575346, 0.33866223,
     0.45202552, 0.48421, 0.53669903, 0.47266611, 0.50925436, 0.42286557, 0.45403656, 0.37221304,
     0.40999322),
    (0.17418084, 0.46892601, 0.25774838, 0.31816231, 0.39330317, 0.34218382, 0.48253904, 0.22084125,
     0.41335728, 0.52437572, 0.5191713, 0.33576117, 0.44230914, 0.44250678, 0.44330833, 0.43887264,
     0.50693611, 0.39278795),
    (0.18757584, 0.42143438, 0.32836702, 1.0, 0.35030067, 0.30110947, 0.41055555, 0.34338879, 0.34336307,
     0.37704433, 0.38810141, 0.34702081, 0.24171562, 0.25433078, 0.24696241, 0.2570884, 0.4465962,
     0.45263213),
    (0.40608522, 0.4736689, 0.52603065, 0.35030067, 1.0, 0.54372584, 0.58300258, 0.56674191, 0.555266,
     0.66599594, 0.68567555, 0.55716359, 0.62997328, 0.65638548, 0.61219615, 0.63183318, 0.54464151,
     0.44293752),
    (0.37503981, 0.50675565, 0.4761106, 0.37561813, 0.60419403, 0.77912403, 0.64595517, 0.85939662,
     0.46037144, 0.52348817, 0.55875094, 0.37741886, 0.455671, 0.49434392, 0.38479954, 0.41804074,
     0.47285709, 0.57236283),
    (0.35448462, 0.50576632, 0.51030446, 0.35841033, 0.55106903, 0.50257274, 0.52591451, 0.4283053,
     0.39991808, 0.42327211, 0.42853819, 0.42071825, 0.41240559, 0.42259136, 0.38125352, 0.3868255,
     0.47604934, 0.51811717),
    (0.22598555, 0.5053299, 0.36301185, 0.38002282, 0.49700941, 0.45625243, 0.62876479, 0.4112051,
     0.33944371, 0.48322639, 0.50318714, 0.29207815, 0.38801966, 0.41119094, 0.29199072, 0.31021029,
     0.41594871, 0.54961962),
    (0.23893579, 0.51999208, 0.3622627, 0.41055555, 0.58300258, 0.68874251, 1.0, 0.56977937, 0.49918447,
     0.48484363, 0.51615925, 0.41222306, 0.49535971, 0.53134951, 0.3807616, 0.41050298, 0.48675801,
     0.51112664),
    (0.33064262, 0.306412, 0.60679935, 0.25592294, 0.58738706, 0.40379627, 0.39679161, 0.33618385,
     0.39235148, 0.45474013, 0.4648476, 0.59306762, 0.58976007, 0.60778661, 0.55400397, 0.56551297,
     0.3698029, 0.33860535),
    (0.28923404, 0.6153155, 0.40999322, 0.45263213, 0.44293752, 0.60359359, 0.51112664, 0.46578181,
     0.45656936, 0.38142307, 0.38525582, 0.33327223, 0.35360175, 0.36156453, 0.3384992, 0.34261229,
     0.49297863, 1.0),
    (0.27986573, 0.47139544, 0.39543695, 0.30110947, 0.54372584, 1.0, 0.68874251, 0.67765588, 0.48690078,
     0.44010641, 0.44921156, 0.32321099, 0.48311542, 0.4982002, 0.39378102, 0.40297733, 0.45309735,
     0.60359359),
    (0.4211553, 0.4310595, 0.53669903, 0.34702081, 0.55716359, 0.32321099, 0.41222306, 0.25721705,
     0.36633509, 0.5397475, 0.56429928, 1.0, 0.55796926, 0.58842844, 0.57930828, 0.60410597, 0.41615326,
     0.33327223),
    (0.36915778, 0.42938598, 0.42286557, 0.24696241, 0.61219615, 0.39378102, 0.3807616, 0.28089866,
     0.48450394, 0.77400821, 0.68813814, 0.57930828, 0.8856886, 0.81673412, 1.0, 0.92279623, 0.46969152,
     0.3384992),
    (0.41377746, 0.46384034, 0.45403656, 0.2570884, 0.63183318, 0.40297733, 0.41050298, 0.332879,
     0.48799542, 0.69231828, 0.77015091, 0.60410597, 0.79788484, 0.88232104, 0.92279623, 1.0, 0.45685017,
     0.34261229),
    (0.32485771, 0.39371443, 0.47266611, 0.24171562, 0.62997328, 0.48311542, 0.49535971, 0.32477932,
     0.51486622, 0.79353556, 0.69768738, 0.55796926, 1.0, 0.92373745, 0.8856886, 0.79788484, 0.47883134,
     0.35360175),
    (0.37248222, 0.4319752, 0.50925436, 0.25433078, 0.65638548, 0.4982002, 0.53134951, 0.38057074,
     0.52403969, 0.72035243, 0.78711147, 0.58842844, 0.92373745, 1.0, 0.81673412, 0.88232104, 0.47109935,
     0.36156453),
    (0.36865639, 0.46514124, 0.45202552, 0.37704433, 0.66599594, 0.44010641, 0.48484363, 0.39636574,
     0.50175258, 1.0, 0.91320249, 0.5397475, 0.79353556, 0.72035243, 0.77400821, 0.69231828, 0.59087008,
     0.38142307),
    (0.41500332, 0.50083501, 0.48421, 0.38810141, 0.68567555, 0.44921156, 0.51615925, 0.45156472,
     0.50438158, 0.91320249, 1.0, 0.56429928, 0.69768738, 0.78711147, 0.68813814, 0.77015091, 0.57698754,
     0.38525582),
)
