using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using JestMesh.Data.WebDataset;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace JestMesh.Learning;

/// <summary>A reference bundle that cannot be used: the message is one line naming the file, or the method and the shape expected.</summary>
public sealed class BundleException(string message) : Exception(message);

/// <summary>
/// What reference.json declares: image geometry and normalisation, tokenizer ("wordpiece" or "bpe"), its vocabulary
/// file, the BPE merges file (null for WordPiece), context length and lower-casing.
/// </summary>
public sealed record BundleSpec(int Height, int Width, int Channels, float[] Mean, float[] Std, string Tokenizer, string Vocab, int ContextLength, bool Lowercase, string? Merges = null);

/// <summary>
/// A reference model exported from PyTorch (scripts/make-reference-bundle.py): model.pt (TorchScript
/// with encode_image(float32[n, C, H, W]) → [n, d] and encode_text(int64[n, L]) → [n, d], parameters
/// or buffers alpha and beta), reference.json and the tokenizer's vocabulary. Checked when loaded:
/// both methods are run on two zero inputs and must return [2, d] with the same d. Its SHA-256 is
/// over every file of the directory: SHA-256 of the lines "RELATIVE_PATH SHA256_OF_FILE\n" in ordinal
/// path order. Tensor work belongs to the thread that loaded it (TorchSharp's no-grad scope is per thread).
/// </summary>
public sealed class ReferenceBundle : IDisposable
{
    private readonly jit.ScriptModule _module;
    private readonly Tokenizer _tokenizer;

    private ReferenceBundle(string directory, BundleSpec spec, jit.ScriptModule module, Tokenizer tokenizer, int dim, float alpha, float beta, string sha256)
    {
        Directory = directory;
        Spec = spec;
        _module = module;
        _tokenizer = tokenizer;
        Dim = dim;
        Alpha = alpha;
        Beta = beta;
        Sha256 = sha256;
    }

    public string Directory { get; }

    public BundleSpec Spec { get; }

    public int Dim { get; }

    public float Alpha { get; }

    public float Beta { get; }

    /// <summary>SHA-256 over all files of the bundle (what reference_checkpoint_sha256 reports).</summary>
    public string Sha256 { get; }

    /// <summary>Floats of one image input (C x H x W).</summary>
    public int ImageSize => Spec.Channels * Spec.Height * Spec.Width;

    /// <summary>True when <paramref name="directory"/> looks like a bundle (has reference.json), not a built-in checkpoint.</summary>
    public static bool IsBundle(string directory) => File.Exists(Path.Combine(directory, "reference.json"));

    /// <exception cref="BundleException">A file is missing or malformed, a method is missing or returns the wrong shape.</exception>
    public static ReferenceBundle Load(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var json = Path.Combine(directory, "reference.json");
        if (!File.Exists(json))
        {
            throw new BundleException($"{json}: missing (a reference bundle needs model.pt, reference.json and its vocabulary).");
        }
        var spec = ReadSpec(json);
        var tokenizer = LoadTokenizer(directory, spec, json);
        var modelPath = Path.Combine(directory, "model.pt");
        if (!File.Exists(modelPath))
        {
            throw new BundleException($"{modelPath}: missing.");
        }
        jit.ScriptModule module;
        try
        {
            module = jit.load(modelPath);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new BundleException($"{modelPath}: not a TorchScript module torch.jit.load reads ({FirstLine(ex.Message)}).");
        }
        try
        {
            module.eval();
            var (dim, alpha, beta) = Probe(module, modelPath, spec);
            return new ReferenceBundle(Path.GetFullPath(directory), spec, module, tokenizer, dim, alpha, beta, DirectorySha256(directory));
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>The unknown token both tokenizers map what they cannot encode to (WordPiece: a word; BPE: a character).</summary>
    public const string UnknownToken = "[UNK]";

    /// <summary>The suffix BPE symbols ending a word carry (CLIP's convention), in the vocabulary and the merges.</summary>
    public const string EndOfWordSuffix = "</w>";

    /// <summary>
    /// The tokenizer reference.json declares. Both pre-tokenize into words and runs of other non-space characters
    /// (\w+|[^\w\s]+, BERT-like: "mid-size" is "mid", "-", "size"), the rule scripts/make-reference-bundle.py
    /// tokenizes with (the library's default splits on spaces only). WordPiece: a vocab.txt, "##" continuations,
    /// [UNK] for a word it cannot split. BPE: a vocab.json ({"token": id}) and merges.txt ("left right" per line,
    /// in priority order), characters as the initial symbols with "&lt;/w&gt;" on a word's last, [UNK] for a character
    /// outside the vocabulary.
    /// </summary>
    private static Tokenizer LoadTokenizer(string directory, BundleSpec spec, string json)
    {
        var vocab = Path.Combine(directory, spec.Vocab);
        if (!File.Exists(vocab))
        {
            throw new BundleException($"{vocab}: missing (reference.json text.vocab names it).");
        }
        if (spec.Tokenizer == "wordpiece")
        {
            try
            {
                return WordPieceTokenizer.Create(vocab, new WordPieceOptions { UnknownToken = UnknownToken, PreTokenizer = PreTokenizer.CreateWordOrNonWord() });
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or IOException)
            {
                throw new BundleException($"{vocab}: not a WordPiece vocabulary ({FirstLine(ex.Message)}).");
            }
        }
        var merges = Path.Combine(directory, spec.Merges!);
        if (!File.Exists(merges))
        {
            throw new BundleException($"{merges}: missing (reference.json text.merges names it).");
        }
        try
        {
            return BpeTokenizer.Create(vocab, merges, PreTokenizer.CreateWordOrNonWord(), normalizer: null, specialTokens: null,
                unknownToken: UnknownToken, continuingSubwordPrefix: null, endOfWordSuffix: EndOfWordSuffix, fuseUnknownTokens: false);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or IOException or JsonException)
        {
            throw new BundleException($"{vocab} with {merges}: not a BPE vocabulary (JSON {{\"token\": id}} with {UnknownToken}) and merges ({FirstLine(ex.Message)}); see {json}.");
        }
    }

    /// <summary>Token ids the text encoder gets: (lower-cased when declared) WordPiece or BPE ids, truncated or padded with 0 to the context length.</summary>
    public void Tokenize(string caption, Span<long> destination)
    {
        ArgumentNullException.ThrowIfNull(caption);
        var ids = _tokenizer.EncodeToIds(Spec.Lowercase ? caption.ToLowerInvariant() : caption);
        destination.Clear();
        for (var i = 0; i < Math.Min(ids.Count, Spec.ContextLength); i++)
        {
            destination[i] = ids[i];
        }
    }

    /// <summary>
    /// Decodes, resizes and normalises one image as reference.json declares: the one image preprocessing
    /// `score`, Scoring and `train --inproc` give a bundle (grey pixels become C equal channels).
    /// </summary>
    /// <exception cref="SampleRejectedException">The image does not decode.</exception>
    public void DecodeImage(SourceImage image, Span<float> destination) =>
        ImageCodec.DecodeNormalised(image, Spec.Channels, Spec.Height, Spec.Width, Spec.Mean, Spec.Std, destination);

    /// <summary>L2-normalised image and text embeddings of <paramref name="count"/> inputs (no grad).</summary>
    public (float[] Image, float[] Text) Embed(float[] images, long[] tokens, int count)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(tokens);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(images, [count, Spec.Channels, Spec.Height, Spec.Width]);
        var t = tensor(tokens, [count, Spec.ContextLength]);
        var zi = nn.functional.normalize((Tensor)_module.invoke("encode_image", x), dim: 1);
        var zt = nn.functional.normalize((Tensor)_module.invoke("encode_text", t), dim: 1);
        return (zi.contiguous().data<float>().ToArray(), zt.contiguous().data<float>().ToArray());
    }

    public void Dispose() => _module.Dispose();

    private static (int Dim, float Alpha, float Beta) Probe(jit.ScriptModule module, string path, BundleSpec spec)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var image = Run(module, path, "encode_image", zeros([2, spec.Channels, spec.Height, spec.Width]), $"float32[n, {spec.Channels}, {spec.Height}, {spec.Width}]");
        var text = Run(module, path, "encode_text", zeros([2, spec.ContextLength], ScalarType.Int64), $"int64[n, {spec.ContextLength}]");
        if (image.shape.Length != 2 || image.shape[0] != 2 || image.dtype != ScalarType.Float32)
        {
            throw new BundleException($"{path}: encode_image returned {image.dtype} [{string.Join(", ", image.shape)}] for 2 images; expected float32 [2, d].");
        }
        var d = image.shape[1];
        if (text.shape.Length != 2 || text.shape[0] != 2 || text.shape[1] != d || text.dtype != ScalarType.Float32)
        {
            throw new BundleException($"{path}: encode_text returned {text.dtype} [{string.Join(", ", text.shape)}] for 2 captions; expected float32 [2, {d}] (d of encode_image).");
        }
        return ((int)d, Scalar(module, path, "alpha"), Scalar(module, path, "beta"));
    }

    private static Tensor Run(jit.ScriptModule module, string path, string method, Tensor input, string takes)
    {
        try
        {
            return module.invoke(method, input) as Tensor
                ?? throw new BundleException($"{path}: {method} does not return a tensor; expected float32 [n, d].");
        }
        catch (Exception ex) when (ex is not BundleException and not OutOfMemoryException)
        {
            throw new BundleException($"{path}: method {method}({takes}) -> float32[n, d] missing or failing ({FirstLine(ex.Message)}).");
        }
    }

    private static float Scalar(jit.ScriptModule module, string path, string name)
    {
        foreach (var (n, p) in module.named_parameters())
        {
            if (n == name)
            {
                return p.numel() == 1 ? p.ToSingle() : throw new BundleException($"{path}: parameter {name} has {p.numel()} elements; expected a scalar.");
            }
        }
        foreach (var (n, b) in module.named_buffers())
        {
            if (n == name)
            {
                return b.numel() == 1 ? b.ToSingle() : throw new BundleException($"{path}: buffer {name} has {b.numel()} elements; expected a scalar.");
            }
        }
        throw new BundleException($"{path}: no parameter or buffer named {name} (the sigmoid loss's {(name == "alpha" ? "temperature" : "bias")}).");
    }

    private static BundleSpec ReadSpec(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var image = Member(doc.RootElement, "image", path);
            var text = Member(doc.RootElement, "text", path);
            var channels = Member(image, "channels", path).GetInt32();
            var spec = new BundleSpec(
                Member(image, "height", path).GetInt32(), Member(image, "width", path).GetInt32(), channels,
                [.. Member(image, "mean", path).EnumerateArray().Select(e => e.GetSingle())],
                [.. Member(image, "std", path).EnumerateArray().Select(e => e.GetSingle())],
                Member(text, "tokenizer", path).GetString() ?? "", Member(text, "vocab", path).GetString() ?? "",
                Member(text, "context_length", path).GetInt32(),
                text.TryGetProperty("lowercase", out var lower) && lower.GetBoolean(),
                text.TryGetProperty("merges", out var merges) ? merges.GetString() : null);
            var problem = spec switch
            {
                { Height: < 1 or > 4096 } or { Width: < 1 or > 4096 } => $"image height {spec.Height} and width {spec.Width} must be in 1..4096",
                { Channels: not (1 or 3) } => $"image channels {spec.Channels} must be 1 or 3",
                _ when spec.Mean.Length != channels || spec.Std.Length != channels => $"image mean ({spec.Mean.Length}) and std ({spec.Std.Length}) need {channels} values each",
                _ when spec.Std.Any(s => !(s > 0) || !float.IsFinite(s)) || spec.Mean.Any(m => !float.IsFinite(m)) => "image std must be positive and mean finite",
                { Tokenizer: not ("wordpiece" or "bpe") } => $"text tokenizer \"{spec.Tokenizer}\" must be \"wordpiece\" or \"bpe\"",
                { Vocab.Length: 0 } => "text vocab must name the vocabulary file",
                { Tokenizer: "bpe", Merges: null or { Length: 0 } } => "text tokenizer \"bpe\" needs text merges naming the merges file",
                { ContextLength: < 1 or > 4096 } => $"text context_length {spec.ContextLength} must be in 1..4096",
                _ => null,
            };
            return problem is null ? spec : throw new BundleException($"{path}: {problem}.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new BundleException($"{path}: {FirstLine(ex.Message)}");
        }
    }

    private static JsonElement Member(JsonElement parent, string name, string path) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var value)
            ? value
            : throw new BundleException($"{path}: \"{name}\" is missing (see README, reference bundles).");

    /// <summary>A bundle's SHA-256 without loading it: SHA-256 of the lines "RELATIVE_PATH SHA256_OF_FILE\n" of every file in ordinal path order.</summary>
    public static string DirectorySha256(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var lines = new StringBuilder();
        foreach (var file in System.IO.Directory.GetFiles(directory, "*", SearchOption.AllDirectories)
                     .Select(f => Path.GetRelativePath(directory, f).Replace('\\', '/')).Order(StringComparer.Ordinal))
        {
            using var stream = File.OpenRead(Path.Combine(directory, file));
            lines.Append(file).Append(' ').Append(Convert.ToHexStringLower(SHA256.HashData(stream))).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(lines.ToString())));
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
