"""Independent references the test files share: what zfviz computes, done the plainest way (no zfviz code)."""
import torch


def relu_output(model, x, layer):
    """The paper's layer ``layer`` (1-7): the output of child ``relu{layer}``, by running the children in order,
    dropout as the identity (eval mode). Keeps autograd, so it also serves as a gradient reference."""
    for name, m in model.named_children():
        x = x if isinstance(m, torch.nn.Dropout) else m(x)
        if name == f"relu{layer}":
            return x
    raise AssertionError(f"no relu{layer}")


def assert_no_hooks(model):
    """No forward/backward hook left on any module (zfviz walks models without hooks)."""
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(m, attr), f"{name or 'model'}.{attr} is not empty"
