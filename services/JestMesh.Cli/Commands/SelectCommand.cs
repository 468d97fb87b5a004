using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using JestMesh.Curation;
using JestMesh.Data;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh select</c>: JEST selection of one super-batch from NumPy files (embedding or per-example mode).</summary>
public static class SelectCommand
{
    /// <summary>Exit code for bad input: a missing, malformed or mismatched file or option.</summary>
    public const int BadInput = 2;


    public static Command Create()
    {
        var learnerImg = Path("--learner-img", "Learner image embeddings, float32 .npy of shape (N, d), rows L2-normalised.");
        var learnerTxt = Path("--learner-txt", "Learner text embeddings, float32 .npy of shape (N, d).");
        var learnerAlpha = Number<float>("--learner-alpha", "Learner temperature α (the logit scale, not its log).");
        var learnerBeta = Number<float>("--learner-beta", "Learner bias β.");
        var refImg = Path("--ref-img", "Reference image embeddings, float32 .npy of shape (N, d).");
        var refTxt = Path("--ref-txt", "Reference text embeddings, float32 .npy of shape (N, d).");
        var refAlpha = Number<float>("--ref-alpha", "Reference temperature α.");
        var refBeta = Number<float>("--ref-beta", "Reference bias β.");
        var learnerLoss = Path("--learner-loss", "Per-example mode: learner losses, float32 .npy of shape (N,).");
        var refLoss = Path("--ref-loss", "Per-example mode: reference losses, float32 .npy of shape (N,).");
        var batchSize = Number<int>("--batch-size", "b: examples to select.");
        var chunks = new Option<int>("--chunks") { Description = "Chunks drawn in sequence (1 = independent selection); must divide b.", DefaultValueFactory = _ => 16 };
        var policy = new Option<string>("--policy") { Description = string.Join(" | ", Policies.Names) + ".", DefaultValueFactory = _ => Policies.Learnability };
        policy.AcceptOnlyFromAmong([.. Policies.Names]);
        var gain = new Option<double>("--gain") { Description = "Softmax score gain: draws ∝ exp(gain·Δ).", DefaultValueFactory = _ => 100 };
        var greedy = new Option<bool>("--greedy") { Description = "No Gumbel noise: deterministic top-k per chunk." };
        var seed = new Option<int>("--seed") { Description = "Random seed; the same seed and inputs give the same selection.", DefaultValueFactory = _ => 0 };
        var softmax = new Option<bool>("--softmax") { Description = "Embedding mode: softmax (InfoNCE) conditional scores instead of the sigmoid (SigLIP) loss." };
        var output = Path("--out", "Where to write the selected indices (int64 .npy of shape (b,)).");
        var summary = Path("--summary", "Optional JSON summary: policy, n, b, chunks, gain, seed, score, chunk_entropy, elapsed_ms (the selection), load_ms (reading the inputs), cpu_ms (CPU time of the process during the selection).");
        var makeSample = Path("--make-sample", "Write a synthetic sample super-batch (.npy files) into this directory and print the select commands to run on it.");
        var sampleSize = new Option<int>("--sample-size") { Description = "N of the --make-sample super-batch.", DefaultValueFactory = _ => SelectSample.Count };

        var command = new Command("select", "Select the most learnable sub-batch of one super-batch with JEST (joint example selection).");
        foreach (var o in new Option[] { learnerImg, learnerTxt, learnerAlpha, learnerBeta, refImg, refTxt, refAlpha, refBeta, learnerLoss, refLoss, batchSize, chunks, policy, gain, greedy, seed, softmax, output, summary, makeSample, sampleSize })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                if (parse.GetValue(makeSample) is { } dir)
                {
                    SelectSample.Write(dir, stdout, parse.GetValue(sampleSize));
                    return 0;
                }

                var request = new Request(
                    parse.GetValue(learnerImg), parse.GetValue(learnerTxt), parse.GetValue(learnerAlpha), parse.GetValue(learnerBeta),
                    parse.GetValue(refImg), parse.GetValue(refTxt), parse.GetValue(refAlpha), parse.GetValue(refBeta),
                    parse.GetValue(learnerLoss), parse.GetValue(refLoss), parse.GetValue(batchSize), parse.GetValue(chunks),
                    Policies.Parse(parse.GetValue(policy)!, "--policy"), parse.GetValue(gain), parse.GetValue(greedy), parse.GetValue(seed),
                    parse.GetValue(softmax), parse.GetValue(output), parse.GetValue(summary));
                var result = Run(request);
                stdout.WriteLine($"selected {result.Indices.Length} of {request.N} examples → {request.Out}; score {Format(result.Score)}, {result.Elapsed.TotalMilliseconds:F1} ms");
                return 0;
            }
            catch (SelectInputException e)
            {
                stderr.WriteLine($"jestmesh select: {e.Message}");
                return BadInput;
            }
        });
        return command;
    }

    private static Option<string?> Path(string name, string description) => new(name) { Description = description };

    /// <summary>An optional number whose parse error names the option and the text, not a CLR type.</summary>
    private static Option<T?> Number<T>(string name, string description)
        where T : struct, IParsable<T> => new(name)
        {
            Description = description,
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (T.TryParse(text, CultureInfo.InvariantCulture, out var value))
                {
                    return value;
                }

                result.AddError($"{name}: '{text}' is not a valid {(typeof(T) == typeof(int) ? "integer" : "number")}");
                return null;
            },
        };

    private static string Format(double x) => double.IsNaN(x) ? "n/a" : x.ToString("G6", CultureInfo.InvariantCulture);

    private static SelectionResult Run(Request r)
    {
        bool embeddings = r.LearnerImg is not null || r.LearnerTxt is not null || r.RefImg is not null || r.RefTxt is not null;
        bool perExample = r.LearnerLoss is not null || r.RefLoss is not null;
        if (embeddings && perExample)
        {
            throw new SelectInputException("give either embeddings (--learner-img/--learner-txt/--ref-img/--ref-txt) or per-example losses (--learner-loss/--ref-loss), not both");
        }

        if (!embeddings && !perExample)
        {
            throw new SelectInputException("no input: give embeddings (--learner-img ... --ref-txt) or per-example losses (--learner-loss, --ref-loss); --make-sample DIR writes an example");
        }

        if (r.Out is null)
        {
            throw new SelectInputException("--out is required (where the selected indices go)");
        }

        if (r.BatchSize is not { } b)
        {
            throw new SelectInputException("--batch-size is required");
        }

        var loadClock = System.Diagnostics.Stopwatch.StartNew();
        bool needLearner = r.Policy is SelectionPolicy.Learnability or SelectionPolicy.HardLearner;
        bool needReference = r.Policy is SelectionPolicy.Learnability or SelectionPolicy.EasyReference;
        IScoreSource source = embeddings
            ? EmbeddingSource(r, needLearner, needReference)
            : LossSource(r, needLearner, needReference);
        r.N = source.Count;
        r.LoadMs = loadClock.Elapsed.TotalMilliseconds;

        SelectionResult result;
        var cpu = Environment.CpuUsage.TotalTime;
        try
        {
            result = JointSampler.Select(source, new SamplerOptions { BatchSize = b, Chunks = r.Chunks, Gain = r.Gain, Greedy = r.Greedy }, new Random(r.Seed));
        }
        catch (ArgumentException e)
        {
            throw new SelectInputException($"{OptionName(e.ParamName)}: {Strip(e)}");
        }

        // Every thread of the process (the sampler's parallel parts, the JIT's background compiles): robust to a loaded machine.
        r.CpuMs = (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds;
        var indices = Array.ConvertAll(result.Indices, i => (long)i);
        Write(r.Out, () => NpyFile.WriteInt64(r.Out, indices, indices.Length));
        if (r.Summary is { } summaryPath)
        {
            Write(summaryPath, () => WriteSummary(summaryPath, r, result));
        }

        return result;
    }

    private static IScoreSource EmbeddingSource(Request r, bool needLearner, bool needReference)
    {
        // Uniform needs no scores, only N: any one file given is enough.
        bool anyLearner = r.LearnerImg is not null || r.LearnerTxt is not null;
        var learner = needLearner || (!needReference && anyLearner) ? Model("learner", r.LearnerImg, r.LearnerTxt, r.LearnerAlpha, r.LearnerBeta, r.Policy == SelectionPolicy.Uniform) : null;
        var reference = needReference || (learner is null) ? Model("ref", r.RefImg, r.RefTxt, r.RefAlpha, r.RefBeta, r.Policy == SelectionPolicy.Uniform) : null;
        if (learner is not null && reference is not null)
        {
            if (learner.Value.Count != reference.Value.Count || learner.Value.Dim != reference.Value.Dim)
            {
                throw new SelectInputException($"{reference.Value.ImgPath}: shape ({reference.Value.Count}, {reference.Value.Dim}) does not match {learner.Value.ImgPath} ({learner.Value.Count}, {learner.Value.Dim})");
            }
        }

        if (r.Policy == SelectionPolicy.Uniform)
        {
            return ScoreSources.Uniform((learner ?? reference)!.Value.Count);
        }

        var l = learner?.Embeddings;
        var f = reference?.Embeddings;
        return r.Softmax ? ScoreSources.SoftmaxContrastive(r.Policy, l, f) : ScoreSources.SigmoidContrastive(r.Policy, l, f);
    }

    private static LoadedModel? Model(string who, string? imgPath, string? txtPath, float? alpha, float? beta, bool countOnly)
    {
        if (countOnly)
        {
            string? path = imgPath ?? txtPath;
            if (path is null)
            {
                return null;
            }

            var (_, s) = Read(path);
            RequireRank(path, s, 2, "(N, d)");
            return new LoadedModel(null, path, s[0], s[1]);
        }

        if (imgPath is null || txtPath is null)
        {
            throw new SelectInputException($"--{who}-img and --{who}-txt are both required for this policy");
        }

        if (alpha is not { } a || beta is not { } bias)
        {
            throw new SelectInputException($"--{who}-alpha and --{who}-beta are required with --{who}-img");
        }

        var (img, imgShape) = Read(imgPath);
        RequireRank(imgPath, imgShape, 2, "(N, d)");
        var (txt, txtShape) = Read(txtPath);
        RequireRank(txtPath, txtShape, 2, "(N, d)");
        if (txtShape[0] != imgShape[0] || txtShape[1] != imgShape[1])
        {
            throw new SelectInputException($"{txtPath}: shape ({txtShape[0]}, {txtShape[1]}) does not match {imgPath} ({imgShape[0]}, {imgShape[1]})");
        }

        if (imgShape[0] == 0 || imgShape[1] == 0)
        {
            throw new SelectInputException($"{imgPath}: empty array of shape ({imgShape[0]}, {imgShape[1]})");
        }

        try
        {
            return new LoadedModel(new ContrastiveEmbeddings(img, txt, imgShape[0], imgShape[1], a, bias), imgPath, imgShape[0], imgShape[1]);
        }
        catch (ArgumentException e)
        {
            string where = e.ParamName switch
            {
                "image" => imgPath,
                "text" => txtPath,
                "alpha" => $"--{who}-alpha",
                "beta" => $"--{who}-beta",
                _ => imgPath,
            };
            throw new SelectInputException($"{where}: {Strip(e)}");
        }
    }

    private static IScoreSource LossSource(Request r, bool needLearner, bool needReference)
    {
        float[]? Load(string? path, bool needed, string option)
        {
            if (path is null)
            {
                return needed ? throw new SelectInputException($"{option} is required for policy {Policies.Name(r.Policy)}") : null;
            }

            var (data, shape) = Read(path);
            RequireRank(path, shape, 1, "(N,)");
            if (shape[0] == 0)
            {
                throw new SelectInputException($"{path}: empty array of shape (0,)");
            }

            return data;
        }

        var learner = Load(r.LearnerLoss, needLearner, "--learner-loss");
        var reference = Load(r.RefLoss, needReference, "--ref-loss");
        if (learner is not null && reference is not null && learner.Length != reference.Length)
        {
            throw new SelectInputException($"{r.RefLoss}: shape ({reference.Length},) does not match {r.LearnerLoss} ({learner.Length},)");
        }

        try
        {
            return ScoreSources.PerExampleLoss(r.Policy, needLearner || reference is null ? learner : null, needReference || learner is null ? reference : null);
        }
        catch (ArgumentException e)
        {
            throw new SelectInputException($"{(e.ParamName == "referenceLoss" ? r.RefLoss : r.LearnerLoss)}: {Strip(e)}");
        }
    }

    private static (float[] Data, int[] Shape) Read(string path)
    {
        try
        {
            return NpyFile.ReadFloat32(path);
        }
        catch (NpyFormatException e)
        {
            throw new SelectInputException($"{path}: {e.Message}");
        }
        catch (IOException e)
        {
            throw new SelectInputException($"{path}: {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new SelectInputException($"{path}: {e.Message}");
        }
    }

    private static void RequireRank(string path, int[] shape, int rank, string expected)
    {
        if (shape.Length != rank)
        {
            throw new SelectInputException($"{path}: shape ({string.Join(", ", shape)}{(shape.Length == 1 ? "," : "")}) has {shape.Length} dimensions; expected {expected}");
        }
    }

    private static void Write(string path, Action write)
    {
        try
        {
            write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SelectInputException($"{path}: cannot write: {e.Message}");
        }
    }

    private static void WriteSummary(string path, Request r, SelectionResult result)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("policy", Policies.Name(r.Policy));
        json.WriteNumber("n", r.N);
        json.WriteNumber("b", result.Indices.Length);
        json.WriteNumber("chunks", r.Chunks);
        json.WriteNumber("gain", r.Gain);
        json.WriteNumber("seed", r.Seed);
        if (double.IsFinite(result.Score))
        {
            json.WriteNumber("score", result.Score);
        }
        else
        {
            // Uniform has no score; JSON has no NaN.
            json.WriteNull("score");
        }

        json.WriteStartArray("chunk_entropy");
        foreach (double h in result.ChunkEntropy)
        {
            json.WriteNumberValue(h);
        }

        json.WriteEndArray();
        json.WriteNumber("elapsed_ms", result.Elapsed.TotalMilliseconds);
        json.WriteNumber("load_ms", r.LoadMs);
        json.WriteNumber("cpu_ms", r.CpuMs);
        json.WriteEndObject();
    }

    private static string OptionName(string? param) => param switch
    {
        "options.BatchSize" => "--batch-size",
        "options.Chunks" => "--chunks",
        "options.Gain" => "--gain",
        _ => param ?? "input",
    };

    /// <summary>The message without ArgumentException's " (Parameter 'x')" suffix: the CLI names the file or option itself.</summary>
    private static string Strip(ArgumentException e)
    {
        string m = e.Message;
        int i = m.IndexOf(" (Parameter '", StringComparison.Ordinal);
        return i >= 0 ? m[..i] : m;
    }

    private readonly record struct LoadedModel(ContrastiveEmbeddings? Embeddings, string ImgPath, int Count, int Dim);

    private sealed record Request(
        string? LearnerImg, string? LearnerTxt, float? LearnerAlpha, float? LearnerBeta,
        string? RefImg, string? RefTxt, float? RefAlpha, float? RefBeta,
        string? LearnerLoss, string? RefLoss, int? BatchSize, int Chunks,
        SelectionPolicy Policy, double Gain, bool Greedy, int Seed, bool Softmax, string? Out, string? Summary)
    {
        public int N { get; set; }

        /// <summary>Reading and checking the input files, ms (elapsed_ms is the selection itself).</summary>
        public double LoadMs { get; set; }

        /// <summary>CPU time of the whole process during the selection, ms.</summary>
        public double CpuMs { get; set; }
    }
}

/// <summary>Bad input to select: reported as one line and exit code 2.</summary>
public sealed class SelectInputException(string message) : Exception(message);
