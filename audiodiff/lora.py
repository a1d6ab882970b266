"""LoRA: low-rank adapters on a frozen UNet's attention projections and ResNet convolutions, trained
instead of the whole UNet (--lora-rank), and merged back into a plain UNet2DModel to be saved.
peft, which provides them, is imported here only, inside the functions."""

from __future__ import annotations

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]


def add_lora(unet, rank: int) -> None:
    """Freeze the UNet and add LoRA adapters (peft) to its attention projections and ResNet convs."""
    from peft import LoraConfig, inject_adapter_in_model

    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)
    inject_adapter_in_model(config, unet)
    for name, parameter in unet.named_parameters():
        parameter.requires_grad_("lora_" in name)


def merged_unet(unet):
    """A plain UNet2DModel (a copy) with any LoRA adapters merged into its weights."""
    import copy

    from diffusers import UNet2DModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = copy.deepcopy(unet)
    adapters = [m for m in merged.modules() if isinstance(m, BaseTunerLayer)]
    if not adapters:
        return merged
    for module in adapters:
        module.merge()
    plain = UNet2DModel.from_config(merged.config)
    state = {k.replace(".base_layer.", "."): v for k, v in merged.state_dict().items() if "lora_" not in k}
    plain.load_state_dict(state)
    return plain
