using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using JestMesh.Cli.InProcess;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Learning;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>jestmesh score</c>: offline reference embeddings of a WebDataset shard directory with a reference
/// bundle, in shard name and file order (what a user precomputes for a very large pool).
/// </summary>
internal static class ScoreCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Directory of WebDataset .tar shards.", Required = true };
        var reference = new Option<string>("--reference") { Description = "Reference bundle directory (model.pt, reference.json, vocabulary).", Required = true };
        var output = new Option<string>("--out") { Description = "Directory for image.npy, text.npy, tokens.npy, keys.txt and summary.json.", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Examples per model call.", DefaultValueFactory = _ => 256 };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (0 = libtorch default).", DefaultValueFactory = _ => 0 };
        var inputs = new Option<bool>("--save-inputs") { Description = "Also write inputs.npy: the decoded, resized, normalised images the image encoder got (float32 [N, C, H, W])." };
        var command = new Command("score", "Reference embeddings of a shard directory with a PyTorch-exported reference bundle: " +
            "OUT/image.npy, OUT/text.npy (float32 [N, d], L2-normalised, rows in the order of OUT/keys.txt), OUT/tokens.npy (int64 [N, L]), OUT/summary.json.");
        foreach (var o in new Option[] { data, reference, output, batch, threads, inputs })
        {
            command.Options.Add(o);
        }
        command.SetAction(parse =>
        {
            var batchSize = parse.GetValue(batch);
            if (batchSize < 1)
            {
                Console.Error.WriteLine($"--batch-size {batchSize} must be positive.");
                return 2;
            }
            Threads.Apply(parse.GetValue(threads));
            try
            {
                var summary = Run(parse.GetValue(data)!, parse.GetValue(reference)!, parse.GetValue(output)!, batchSize, parse.GetValue(inputs));
                Console.WriteLine($"score: {summary.N} examples, d = {summary.D}, {summary.Skipped} skipped, {summary.ExamplesPerS:F0} examples/s " +
                    $"(decode {summary.DecodeMs:F0} ms + tokenize {summary.TokenizeMs:F0} ms outside the model = {summary.OutsideModelShareOfModel:P0} of model {summary.ModelMs:F0} ms) → {parse.GetValue(output)}");
                return 0;
            }
            catch (BundleException e)
            {
                Console.Error.WriteLine($"score: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or InvalidDataException)
            {
                Console.Error.WriteLine($"score: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>summary.json of a score run (the first six fields are the issue's; the rest say where the time went).</summary>
    internal sealed record ScoreSummary(
        int N, int D, float Alpha, float Beta, int Skipped, double ExamplesPerS,
        string ReferenceSha256, int Threads, double WallMs, double DecodeMs, double TokenizeMs, double ModelMs, double OutsideModelShareOfModel);

    private sealed record Input(string Name, float[] Image, long[] Tokens);

    internal static ScoreSummary Run(string dataDirectory, string bundleDirectory, string outDirectory, int batchSize, bool saveInputs)
    {
        using var bundle = ReferenceBundle.Load(bundleDirectory);
        var source = new WdsSource(dataDirectory, skip => Console.Error.WriteLine($"score: {skip}"));
        var decodeClock = new Stopwatch();
        var tokenizeClock = new Stopwatch();
        var modelClock = new Stopwatch();
        var wall = Stopwatch.StartNew();
        var keys = new List<string>();
        var image = new List<float>();
        var text = new List<float>();
        var tokens = new List<long>();
        var saved = saveInputs ? new List<float>() : null;
        var pending = new List<Input>(batchSize);

        void Flush()
        {
            if (pending.Count == 0)
            {
                return;
            }
            var x = new float[pending.Count * bundle.ImageSize];
            var t = new long[pending.Count * bundle.Spec.ContextLength];
            for (var i = 0; i < pending.Count; i++)
            {
                pending[i].Image.CopyTo(x, i * bundle.ImageSize);
                pending[i].Tokens.CopyTo(t, i * bundle.Spec.ContextLength);
                keys.Add(pending[i].Name);
            }
            modelClock.Start();
            var (zi, zt) = bundle.Embed(x, t, pending.Count);
            modelClock.Stop();
            image.AddRange(zi);
            text.AddRange(zt);
            tokens.AddRange(t);
            saved?.AddRange(x);
            pending.Clear();
        }

        Input Decode(WdsSample sample)
        {
            var x = new float[bundle.ImageSize];
            decodeClock.Start();
            try
            {
                bundle.DecodeImage(SourceImage.Encoded(sample.Image), x);
            }
            finally
            {
                decodeClock.Stop();
            }
            var ids = new long[bundle.Spec.ContextLength];
            tokenizeClock.Start();
            bundle.Tokenize(sample.Caption, ids);
            tokenizeClock.Stop();
            return new Input(sample.Name, x, ids);
        }

        foreach (var input in source.InFileOrder(Decode))
        {
            pending.Add(input);
            if (pending.Count == batchSize)
            {
                Flush();
            }
        }
        Flush();
        wall.Stop();

        var n = keys.Count;
        var d = bundle.Dim;
        Directory.CreateDirectory(outDirectory);
        NpyFile.WriteFloat32(Path.Combine(outDirectory, "image.npy"), image.ToArray(), n, d);
        NpyFile.WriteFloat32(Path.Combine(outDirectory, "text.npy"), text.ToArray(), n, d);
        NpyFile.WriteInt64(Path.Combine(outDirectory, "tokens.npy"), tokens.ToArray(), n, bundle.Spec.ContextLength);
        if (saved is not null)
        {
            NpyFile.WriteFloat32(Path.Combine(outDirectory, "inputs.npy"), saved.ToArray(), n, bundle.Spec.Channels, bundle.Spec.Height, bundle.Spec.Width);
        }
        File.WriteAllLines(Path.Combine(outDirectory, "keys.txt"), keys);
        var modelMs = modelClock.Elapsed.TotalMilliseconds;
        var outside = decodeClock.Elapsed.TotalMilliseconds + tokenizeClock.Elapsed.TotalMilliseconds;
        var summary = new ScoreSummary(n, d, bundle.Alpha, bundle.Beta, source.Skipped.Count, n / Math.Max(1e-9, wall.Elapsed.TotalSeconds),
            bundle.Sha256, TorchSharp.torch.get_num_threads(), wall.Elapsed.TotalMilliseconds, decodeClock.Elapsed.TotalMilliseconds,
            tokenizeClock.Elapsed.TotalMilliseconds, modelMs, modelMs > 0 ? outside / modelMs : 0);
        File.WriteAllText(Path.Combine(outDirectory, "summary.json"), JsonSerializer.Serialize(summary, SnakeCase));
        return summary;
    }

    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };
}
