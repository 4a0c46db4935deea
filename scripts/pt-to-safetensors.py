#!/usr/bin/env python3
"""
Convert a PyTorch CLIP checkpoint to safetensors, which rvpt loads (src/checkpoint/clipWeights.ts).

    python3 scripts/pt-to-safetensors.py ViT-B-32.pt [out.safetensors]

Handles OpenAI's TorchScript archives (ViT-B-32.pt), CleanCLIP/BadCLIP training checkpoints ({"state_dict": ...},
keys under 'module.'), and plain state dicts. Keys are kept as they are (rvpt strips the prefixes); fp16 tensors
stay fp16 (rvpt widens them to fp32); non-tensor entries and integer buffers of OpenAI's JIT archive
(input_resolution, context_length, vocab_size) are dropped. Needs PyTorch (Debian: apt-get install python3-torch);
no other package.
"""
import json
import struct
import sys

import torch

DTYPES = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64', torch.int32: 'I32', torch.float64: 'F64'}


def load_state_dict(path):
    try:
        return torch.jit.load(path, map_location='cpu').state_dict()
    except RuntimeError:
        pass
    obj = torch.load(path, map_location='cpu')
    if isinstance(obj, dict) and 'state_dict' in obj:
        obj = obj['state_dict']
    if not isinstance(obj, dict):
        sys.exit(f'{path}: expected a state dict (or {{"state_dict": ...}}), found {type(obj).__name__}')
    return obj


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) == 3 else src.rsplit('.', 1)[0] + '.safetensors'
    sd = load_state_dict(src)
    header, blobs, offset = {'__metadata__': {'format': 'pt', 'source': src}}, [], 0
    for name in sorted(sd):
        t = sd[name]
        if not torch.is_tensor(t) or name in ('input_resolution', 'context_length', 'vocab_size'):
            continue
        if t.dtype == torch.bfloat16:
            raw = t.contiguous().view(torch.int16).numpy().tobytes()
        else:
            raw = t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(dst + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    import os
    os.replace(dst + '.tmp', dst)
    print(f'wrote {dst}: {len(header) - 1} tensors, {offset / 2**20:.1f} MiB')


if __name__ == '__main__':
    main()
