"""Saving and loading: models and training checkpoints in safetensors files.

    fastnn.save(model, "model.safetensors")           # weights + architecture
    model = fastnn.load("model.safetensors")          # rebuilt, weights loaded, train mode
    sd = fastnn.load_state_dict("model.safetensors")  # only the arrays, for model.load_state_dict

    fastnn.save_checkpoint("ckpt.safetensors", model, optimizer, scheduler, epoch=3, best=0.91)
    info = fastnn.load_checkpoint("ckpt.safetensors", model, optimizer, scheduler)
    info["epoch"], info["best"]                       # 3, 0.91; the RNG state is restored too

    @fastnn.register_module                           # your own layer, loadable by fastnn.load
    class Block(nn.Module):
        def __init__(self, width): ...
        def get_config(self): return {"width": self.width}

Files. A model file holds model.state_dict() under its keys (int64 buffers such
as num_batches_tracked included) and, in the safetensors metadata, "format":
"fastnn", "format_version", "content": "model" and "architecture": JSON of the
module tree, {"class": name, "config": module.get_config()} for a layer or a
loss, {"class": name, "children": [[name, spec], ...]} for a container
(Sequential, ModuleList, ... : see fastnn.nn.container_protocol), with
"config": container_config() when the container has options. A checkpoint
("content": "checkpoint") holds the model's arrays under "model.<key>", the
optimizer's state arrays under "optimizer.state.<index>.<name>", and JSON
metadata for the optimizer's param groups and per-parameter steps, the
scheduler's state_dict, the epoch, the extras and fastnn's random stream. Files
are written to a temporary file in the same folder, fsynced and renamed onto
the target: a crash or an error never leaves a half-written file, and an
existing one stays as it was. A temporary is named
.{name}.fastnn-{pid}-{machine tag}-{random}.tmp; each save first removes those
in its folder whose writer, on this machine, no longer runs (kill -9 mid-save).

Safety. Loading never unpickles, evaluates or imports anything: class names are
looked up only among fastnn.nn's layers and classes registered with
register_module, configs must be JSON objects of JSON scalars and lists, and
the tensor shapes a layer's config implies (its class's state_shapes(config),
which every fastnn.nn layer defines) are checked against the stored tensors
before anything is allocated. Nesting depth, module count, header and metadata
sizes are capped, and the checks take time about linear in the file's size. A
key named twice (in the header or in any JSON metadata) is refused, as
safetensors and json.loads would silently keep the last. A checkpoint's
optimizer state is checked before anything is restored: exactly the arrays the
optimizer's state_names() asks for, float32, shaped like their parameters and
finite; step counts whole and >= 1; options by the optimizer's own
validate_group(), as its constructor. Whatever is wrong with the file's
contents (truncated, random bytes, another program's safetensors, hostile JSON,
wrong shapes or dtypes) raises ValueError naming the file, never TypeError; a
missing file raises FileNotFoundError, a directory IsADirectoryError, and a
FIFO or device ValueError before it is opened (reading one would block). A
registered class is your code: its constructor runs with the file's (checked)
config values. tools/hostile_files.py runs a mutation campaign against all of
this.

Files of the package: registry.py (the class registry, register_module),
architecture.py (describe / plan / build the module tree), files.py (atomic
safetensors writing, safe reading, the header, JSON metadata), models.py
(save / load), checkpoints.py (save_checkpoint / load_checkpoint).
"""
from fastnn.serialization.checkpoints import load_checkpoint, save_checkpoint
from fastnn.serialization.files import load_state_dict
from fastnn.serialization.models import load, save
from fastnn.serialization.registry import register_module

__all__ = ["save", "load", "load_state_dict", "save_checkpoint", "load_checkpoint",
           "register_module"]
