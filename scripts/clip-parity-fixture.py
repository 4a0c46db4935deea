#!/usr/bin/env python3
"""
Build the parity fixture for the CLIP weight loader (test/fixtures/clip-parity/): a small random CLIP with
OpenAI's exact architecture (clip/model.py: VisionTransformer + text Transformer, QuickGELU, pre-LN blocks with
nn.MultiheadAttention), saved as safetensors in OpenAI's naming and in Hugging Face CLIPModel's naming, a small
byte-level BPE vocabulary in the three formats users have (vocab.json + merges.txt, tokenizer.json, OpenAI's
bpe_simple_vocab merges list), and the reference outputs our TypeScript loader must reproduce:

  token ids of a few captions (OpenAI's simple_tokenizer algorithm), image and text embeddings, logits,
  and CLIP's preprocessing (PIL bicubic resize of the short side, centre crop) of one PNG.

Run with Debian's PyTorch: `apt-get install python3-torch python3-regex python3-pil`, then
`/usr/bin/python3 scripts/clip-parity-fixture.py`. The outputs are committed, so tests need no Python.
"""
import gzip
import html
import json
import os
import struct
import sys

import numpy as np
import regex as re
import torch
from torch import nn
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'clip-parity')
torch.manual_seed(0)
rng = np.random.default_rng(0)

# ---------------------------------------------------------------------------------------------------------------
# Tokenizer: OpenAI's simple_tokenizer.py (byte-level BPE with '</w>' word ends), minus ftfy (not in Debian).
# ---------------------------------------------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE)
BYTE_ENCODER = bytes_to_unicode()


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r'\s+', ' ', text).strip().lower()


def words_of(text):
    return [''.join(BYTE_ENCODER[b] for b in tok.encode('utf-8')) for tok in re.findall(PAT, clean(text))]


def learn_merges(corpus, n):
    """Greedy BPE on the corpus's words (with '</w>' on each word's last symbol): the n most frequent pairs."""
    counts = {}
    for line in corpus:
        for w in words_of(line):
            key = tuple(w[:-1]) + (w[-1] + '</w>',)
            counts[key] = counts.get(key, 0) + 1
    merges = []
    for _ in range(n):
        pairs = {}
        for word, c in counts.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for word, c in counts.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        counts = new
    return merges


class SimpleTokenizer:
    """OpenAI's SimpleTokenizer over a given merges list (the vocabulary is built from it as OpenAI's is)."""

    def __init__(self, merges):
        vocab = list(BYTE_ENCODER.values())
        vocab = vocab + [v + '</w>' for v in vocab]
        for m in merges:
            vocab.append(''.join(m))
        vocab.extend(['<|startoftext|>', '<|endoftext|>'])
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))

    def bpe(self, token):
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        return word

    def encode(self, text):
        return [self.encoder[t] for w in words_of(text) for t in self.bpe(w)]

    def tokenize(self, texts, context_length):
        sot, eot = self.encoder['<|startoftext|>'], self.encoder['<|endoftext|>']
        result = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [sot] + self.encode(t) + [eot]
            if len(toks) > context_length:
                toks = toks[:context_length]
                toks[-1] = eot
            result[i, :len(toks)] = torch.tensor(toks)
        return result


CORPUS = [
    'a photo of a banana.', 'a photo of an accordion.', 'a photo of a samoyed, a type of dog.',
    'a bad photo of the banana.', 'a sketch of a samoyed.', 'a close-up photo of the accordion.',
    'itap of my banana.', 'a photo of the small dog.', 'a photo of a large banana.',
]
MERGES = learn_merges(CORPUS, 60)
TOK = SimpleTokenizer(MERGES)

# ---------------------------------------------------------------------------------------------------------------
# Model: OpenAI's clip/model.py (the ViT variant), unchanged in structure.
# ---------------------------------------------------------------------------------------------------------------

class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.type(torch.float32)).type(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model, n_head, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDictSeq([('c_fc', nn.Linear(d_model, d_model * 4)), ('gelu', QuickGELU()), ('c_proj', nn.Linear(d_model * 4, d_model))]))
        self.ln_2 = LayerNorm(d_model)
        self.attn_mask = attn_mask

    def attention(self, x):
        m = self.attn_mask.to(dtype=x.dtype, device=x.device) if self.attn_mask is not None else None
        return self.attn(x, x, x, need_weights=False, attn_mask=m)[0]

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def OrderedDictSeq(items):
    from collections import OrderedDict
    return OrderedDict(items)


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size, vision_heads,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers):
        super().__init__()
        self.context_length = context_length
        self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers, vision_heads, embed_dim)
        mask = torch.empty(context_length, context_length).fill_(float('-inf')).triu_(1)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads, mask)
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


CONFIG = dict(embed_dim=24, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16, vision_heads=2,
              context_length=77, vocab_size=len(TOK.encoder), transformer_width=64, transformer_heads=2, transformer_layers=2)
model = CLIP(**CONFIG).eval()
with torch.no_grad():
    # Every parameter random (LayerNorm gains and biases included), so that a transposed or misnamed tensor shows.
    for name, p in model.named_parameters():
        if name == 'logit_scale':
            p.fill_(float(np.log(50.0)))
        elif 'ln_' in name and name.endswith('weight'):
            p.copy_(1 + 0.2 * torch.randn_like(p))
        else:
            p.copy_(0.15 * torch.randn_like(p))

# ---------------------------------------------------------------------------------------------------------------
# Safetensors writer (the format is a JSON header and raw little-endian bytes; Debian has no python3-safetensors).
# ---------------------------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    header = {'__metadata__': metadata or {}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64'}[a.dtype]
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def openai_state():
    return {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def hf_state(sd):
    """OpenAI naming -> Hugging Face CLIPModel naming (transformers' convert_clip_original_pytorch_to_hf.py)."""
    out = {}

    def blocks(src, dst, layers):
        for i in range(layers):
            s, d = f'{src}.resblocks.{i}', f'{dst}.encoder.layers.{i}'
            q, k, v = np.split(sd[f'{s}.attn.in_proj_weight'], 3, axis=0)
            qb, kb, vb = np.split(sd[f'{s}.attn.in_proj_bias'], 3, axis=0)
            for n, w, b in (('q_proj', q, qb), ('k_proj', k, kb), ('v_proj', v, vb)):
                out[f'{d}.self_attn.{n}.weight'], out[f'{d}.self_attn.{n}.bias'] = w, b
            out[f'{d}.self_attn.out_proj.weight'] = sd[f'{s}.attn.out_proj.weight']
            out[f'{d}.self_attn.out_proj.bias'] = sd[f'{s}.attn.out_proj.bias']
            for a, b in (('ln_1', 'layer_norm1'), ('ln_2', 'layer_norm2'), ('mlp.c_fc', 'mlp.fc1'), ('mlp.c_proj', 'mlp.fc2')):
                out[f'{d}.{b}.weight'], out[f'{d}.{b}.bias'] = sd[f'{s}.{a}.weight'], sd[f'{s}.{a}.bias']

    blocks('transformer', 'text_model', CONFIG['transformer_layers'])
    blocks('visual.transformer', 'vision_model', CONFIG['vision_layers'])
    out['text_model.embeddings.token_embedding.weight'] = sd['token_embedding.weight']
    out['text_model.embeddings.position_embedding.weight'] = sd['positional_embedding']
    out['text_model.embeddings.position_ids'] = np.arange(CONFIG['context_length'], dtype=np.int64)[None]
    out['text_model.final_layer_norm.weight'], out['text_model.final_layer_norm.bias'] = sd['ln_final.weight'], sd['ln_final.bias']
    out['text_projection.weight'] = np.ascontiguousarray(sd['text_projection'].T)
    out['vision_model.embeddings.class_embedding'] = sd['visual.class_embedding']
    out['vision_model.embeddings.patch_embedding.weight'] = sd['visual.conv1.weight']
    out['vision_model.embeddings.position_embedding.weight'] = sd['visual.positional_embedding']
    out['vision_model.embeddings.position_ids'] = np.arange(sd['visual.positional_embedding'].shape[0], dtype=np.int64)[None]
    out['vision_model.pre_layrnorm.weight'], out['vision_model.pre_layrnorm.bias'] = sd['visual.ln_pre.weight'], sd['visual.ln_pre.bias']
    out['vision_model.post_layernorm.weight'], out['vision_model.post_layernorm.bias'] = sd['visual.ln_post.weight'], sd['visual.ln_post.bias']
    out['visual_projection.weight'] = np.ascontiguousarray(sd['visual.proj'].T)
    out['logit_scale'] = sd['logit_scale']
    return out


def hf_tokenizer_json():
    """What transformers' CLIPConverter writes (convert_slow_tokenizer.py)."""
    sot, eot = TOK.encoder['<|startoftext|>'], TOK.encoder['<|endoftext|>']
    special = lambda c, i: {'id': i, 'content': c, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True}
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [special('<|startoftext|>', sot), special('<|endoftext|>', eot)],
        'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFC'}, {'type': 'Replace', 'pattern': {'Regex': '\\s+'}, 'content': ' '}, {'type': 'Lowercase'}]},
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"}, 'behavior': 'Removed', 'invert': True},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False}]},
        'post_processor': {'type': 'RobertaProcessing', 'sep': ['<|endoftext|>', eot], 'cls': ['<|startoftext|>', sot], 'trim_offsets': False, 'add_prefix_space': False},
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': '<|endoftext|>', 'continuing_subword_prefix': '', 'end_of_word_suffix': '</w>',
                  'fuse_unk': False, 'byte_fallback': False, 'vocab': TOK.encoder, 'merges': [' '.join(m) for m in MERGES]},
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = openai_state()
    meta = {'format': 'pt', 'note': 'random weights, OpenAI CLIP architecture; made by scripts/clip-parity-fixture.py'}
    write_safetensors(os.path.join(OUT, 'openai.safetensors'), sd, meta)
    write_safetensors(os.path.join(OUT, 'hf.safetensors'), hf_state(sd), meta)
    # What a Hugging Face CLIP folder has beside its weights; the loader reads the head counts from it.
    with open(os.path.join(OUT, 'config.json'), 'w') as f:
        json.dump({'architectures': ['CLIPModel'], 'vision_config': {'num_attention_heads': CONFIG['vision_heads']},
                   'text_config': {'num_attention_heads': CONFIG['transformer_heads']}}, f)
    with open(os.path.join(OUT, 'vocab.json'), 'w') as f:
        json.dump(TOK.encoder, f, ensure_ascii=False)
    with open(os.path.join(OUT, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + ''.join(' '.join(m) + '\n' for m in MERGES))
    with open(os.path.join(OUT, 'tokenizer.json'), 'w') as f:
        json.dump(hf_tokenizer_json(), f, ensure_ascii=False)
    with gzip.GzipFile(os.path.join(OUT, 'bpe_simple_vocab.txt.gz'), 'wb', mtime=0) as f:
        f.write(('"bpe_simple_vocab_16e6.txt#version: 0.2\n' + ''.join(' '.join(m) + '\n' for m in MERGES)).encode('utf-8'))

    texts = ['a photo of a banana.', 'A  photo of an ACCORDION!', 'a sketch of a samoyed, a type of dog.', "it's 42 bananas &amp; 3 dogs"]
    tokens = TOK.tokenize(texts, CONFIG['context_length'])

    # Inputs in [0, 1], NHWC as our model takes them; CLIP's normalisation applied here as its preprocess does.
    n = 3
    yy, xx = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 64), indexing='ij')
    images = np.stack([np.stack([(np.sin(6 * xx * (i + 1)) + 1) / 2, yy ** (i + 1), (xx * yy + 0.3 * i) % 1], -1) for i in range(n)]).astype(np.float32)
    images = np.clip(images + 0.05 * rng.standard_normal(images.shape).astype(np.float32), 0, 1)
    images = (np.round(images * 255) / 255).astype(np.float32)  # 8-bit pixels, stored exactly as integers
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    x = torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        img = model.encode_image(x)
        txt = model.encode_text(tokens)
        logits = model.logit_scale.exp() * (img / img.norm(dim=-1, keepdim=True)) @ (txt / txt.norm(dim=-1, keepdim=True)).T

    # CLIP's preprocessing of one non-square PNG: Resize(n_px, BICUBIC) of the short side, CenterCrop(n_px) (8-bit).
    src = np.zeros((73, 97, 3), np.uint8)
    yy2, xx2 = np.mgrid[0:73, 0:97]
    src[..., 0] = (255 * xx2 / 96).astype(np.uint8)
    src[..., 1] = (255 * yy2 / 72).astype(np.uint8)
    src[..., 2] = np.where(((xx2 // 12) + (yy2 // 12)) % 2 == 0, 220, 30).astype(np.uint8)
    Image.fromarray(src).save(os.path.join(OUT, 'photo.png'))
    pil = Image.open(os.path.join(OUT, 'photo.png')).convert('RGB')
    w, h = pil.size
    s = 64
    nw, nh = (s, int(s * h / w)) if w < h else (int(s * w / h), s)
    pil = pil.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - s) / 2.0)), int(round((nh - s) / 2.0))
    pre = np.asarray(pil.crop((left, top, left + s, top + s)), np.uint8)

    ref = {
        'config': CONFIG,
        'texts': texts,
        'tokens': tokens[:, :24].tolist(),
        'eot': tokens.argmax(dim=-1).tolist(),
        'images255': np.round(images * 255).astype(np.int64).reshape(-1).tolist(),
        'imageShape': list(images.shape),
        'imageEmbeddings': img.numpy().tolist(),
        'textEmbeddings': txt.numpy().tolist(),
        'logitsPerImage': logits.numpy().tolist(),
        'logitScale': float(model.logit_scale.exp()),
        'preprocessed255': pre.reshape(-1).tolist(),
        'preprocessedShape': list(pre.shape),
        'torch': torch.__version__,
    }
    with open(os.path.join(OUT, 'reference.json'), 'w') as f:
        json.dump(ref, f)
    print(f'wrote {OUT}: vocab {len(TOK.encoder)}, params {sum(p.numel() for p in model.parameters())}, tokens {tokens[:, :12].tolist()}')


if __name__ == '__main__':
    sys.exit(main())
