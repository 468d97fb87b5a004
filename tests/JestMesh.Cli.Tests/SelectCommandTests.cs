using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using JestMesh.Cli.Commands;
using JestMesh.Data;

namespace JestMesh.Cli.Tests;

[Trait("Tier", "Unit")]
public sealed class SelectCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-select-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Embedding_mode_selects_b_distinct_indices_and_writes_the_summary()
    {
        MakeSample();
        string output = P("selected.npy");
        string summary = P("summary.json");
        var (code, stdout, stderr) = Invoke([.. EmbeddingArgs(), "--batch-size", "512", "--seed", "3", "--out", output, "--summary", summary]);
        Assert.True(code == 0, stderr);
        Assert.Contains("selected 512 of 2048", stdout, StringComparison.Ordinal);

        var (indices, shape) = NpyFile.ReadInt64(output);
        Assert.Equal(new[] { 512 }, shape);
        Assert.Equal(512, indices.Distinct().Count());
        Assert.All(indices, i => Assert.InRange(i, 0, SelectSample.Count - 1));

        using var json = JsonDocument.Parse(File.ReadAllText(summary));
        var root = json.RootElement;
        Assert.Equal(new[] { "policy", "n", "b", "chunks", "gain", "seed", "score", "chunk_entropy", "elapsed_ms", "load_ms", "cpu_ms" }, root.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("learnability", root.GetProperty("policy").GetString());
        Assert.Equal(2048, root.GetProperty("n").GetInt32());
        Assert.Equal(512, root.GetProperty("b").GetInt32());
        Assert.Equal(16, root.GetProperty("chunks").GetInt32());
        Assert.Equal(100, root.GetProperty("gain").GetDouble());
        Assert.Equal(3, root.GetProperty("seed").GetInt32());
        Assert.True(double.IsFinite(root.GetProperty("score").GetDouble()));
        Assert.Equal(16, root.GetProperty("chunk_entropy").GetArrayLength());
        Assert.True(root.GetProperty("elapsed_ms").GetDouble() > 0);
    }

    [Fact]
    public void The_same_seed_writes_the_same_selection_and_another_seed_does_not()
    {
        MakeSample();
        string[] Args(string output, int seed) => [.. EmbeddingArgs(), "--batch-size", "256", "--gain", "0.5", "--seed", seed.ToString(), "--out", output];
        Assert.Equal(0, Invoke(Args(P("a.npy"), 1)).Code);
        Assert.Equal(0, Invoke(Args(P("b.npy"), 1)).Code);
        Assert.Equal(0, Invoke(Args(P("c.npy"), 2)).Code);
        Assert.Equal(File.ReadAllBytes(P("a.npy")), File.ReadAllBytes(P("b.npy")));
        Assert.NotEqual(File.ReadAllBytes(P("a.npy")), File.ReadAllBytes(P("c.npy")));
    }

    [Fact]
    public void Softmax_scores_select_from_the_same_embeddings()
    {
        MakeSample();
        var (code, stdout, stderr) = Invoke([.. EmbeddingArgs(), "--softmax", "--batch-size", "256", "--chunks", "8", "--out", P("s.npy")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("selected 256 of 2048", stdout, StringComparison.Ordinal);
        Assert.Equal(256, NpyFile.ReadInt64(P("s.npy")).Data.Distinct().Count());
    }

    [Fact]
    public void Per_example_mode_with_greedy_takes_the_top_learnability()
    {
        var learner = new float[] { 1f, 5f, 2f, 9f, 0.5f, 3f };
        var reference = new float[] { 0.5f, 1f, 1.5f, 8.5f, 0f, 0f };
        NpyFile.WriteFloat32(P("ll.npy"), learner, 6);
        NpyFile.WriteFloat32(P("rl.npy"), reference, 6);
        var (code, _, stderr) = Invoke(["--learner-loss", P("ll.npy"), "--ref-loss", P("rl.npy"), "--batch-size", "2", "--chunks", "1", "--greedy", "--out", P("o.npy")]);
        Assert.True(code == 0, stderr);
        // learnability = learner − reference = 0.5, 4, 0.5, 0.5, 0.5, 3
        Assert.Equal(new long[] { 1, 5 }, NpyFile.ReadInt64(P("o.npy")).Data);
    }

    [Fact]
    public void Uniform_needs_only_one_input_and_has_a_null_score()
    {
        NpyFile.WriteFloat32(P("ll.npy"), new float[10], 10);
        var (code, _, stderr) = Invoke(["--learner-loss", P("ll.npy"), "--policy", "uniform", "--batch-size", "4", "--chunks", "2", "--out", P("o.npy"), "--summary", P("s.json")]);
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(File.ReadAllText(P("s.json")));
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("score").ValueKind);
        Assert.Equal("uniform", json.RootElement.GetProperty("policy").GetString());
    }

    [Fact]
    public void A_missing_file_is_one_line_naming_it_with_exit_code_2()
    {
        AssertBadInput(["--learner-loss", P("nope.npy"), "--ref-loss", P("nope2.npy"), "--batch-size", "2", "--out", P("o.npy")], P("nope.npy"), "file not found");
    }

    [Fact]
    public void A_wrong_dtype_names_the_file_and_the_dtype()
    {
        File.WriteAllBytes(P("f8.npy"), NpyFileTests.Build("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", new byte[32]));
        NpyFile.WriteFloat32(P("rl.npy"), new float[4], 4);
        AssertBadInput(["--learner-loss", P("f8.npy"), "--ref-loss", P("rl.npy"), "--batch-size", "2", "--out", P("o.npy")], P("f8.npy"), "dtype is '<f8'");
    }

    [Fact]
    public void A_wrong_rank_names_the_file_and_the_expected_shape()
    {
        NpyFile.WriteFloat32(P("m.npy"), new float[8], 2, 4);
        NpyFile.WriteFloat32(P("rl.npy"), new float[2], 2);
        AssertBadInput(["--learner-loss", P("m.npy"), "--ref-loss", P("rl.npy"), "--batch-size", "1", "--chunks", "1", "--out", P("o.npy")], P("m.npy"), "expected (N,)");
        NpyFile.WriteFloat32(P("v.npy"), new float[8], 8);
        AssertBadInput([.. Model("learner", P("v.npy"), P("v.npy")), .. Model("ref", P("v.npy"), P("v.npy")), "--batch-size", "1", "--chunks", "1", "--out", P("o.npy")], P("v.npy"), "expected (N, d)");
    }

    [Fact]
    public void Mismatched_shapes_name_both_files()
    {
        var unit = Enumerable.Range(0, 12).Select(i => i % 3 == 0 ? 1f : 0f).ToArray();
        NpyFile.WriteFloat32(P("a.npy"), unit, 4, 3);
        NpyFile.WriteFloat32(P("b.npy"), unit.AsSpan(0, 9), 3, 3);
        var (_, _, stderr) = AssertBadInput([.. Model("learner", P("a.npy"), P("b.npy")), .. Model("ref", P("a.npy"), P("a.npy")), "--batch-size", "1", "--chunks", "1", "--out", P("o.npy")], P("b.npy"), "does not match");
        Assert.Contains(P("a.npy"), stderr, StringComparison.Ordinal);
        AssertBadInput([.. Model("learner", P("a.npy"), P("a.npy")), .. Model("ref", P("b.npy"), P("b.npy")), "--batch-size", "1", "--chunks", "1", "--out", P("o.npy")], P("b.npy"), "does not match");
    }

    [Fact]
    public void A_non_finite_value_names_the_file_and_position()
    {
        var img = Enumerable.Range(0, 12).Select(i => i % 3 == 0 ? 1f : 0f).ToArray();
        var txt = (float[])img.Clone();
        txt[7] = float.NaN;
        NpyFile.WriteFloat32(P("img.npy"), img, 4, 3);
        NpyFile.WriteFloat32(P("txt.npy"), txt, 4, 3);
        AssertBadInput([.. Model("learner", P("img.npy"), P("txt.npy")), .. Model("ref", P("img.npy"), P("img.npy")), "--batch-size", "1", "--chunks", "1", "--out", P("o.npy")], P("txt.npy"), "text[2, 1] is NaN");
    }

    [Theory]
    [InlineData("5000", "16", "--batch-size: BatchSize 5000 must be in [1, N = 2048]")]
    [InlineData("500", "16", "--chunks: Chunks 16 must be positive and divide BatchSize 500")]
    public void Bad_sizes_name_the_option_and_value(string b, string chunks, string expected)
    {
        MakeSample();
        AssertBadInput([.. EmbeddingArgs(), "--batch-size", b, "--chunks", chunks, "--out", P("o.npy")], "--", expected);
    }

    [Fact]
    public void Missing_options_are_bad_input()
    {
        MakeSample();
        AssertBadInput([.. EmbeddingArgs(), "--batch-size", "16"], "--out", "required");
        AssertBadInput([.. EmbeddingArgs(), "--out", P("o.npy")], "--batch-size", "required");
        AssertBadInput(["--learner-img", P("learner_img.npy"), "--learner-txt", P("learner_txt.npy"), "--learner-alpha", "10", "--ref-img", P("ref_img.npy"), "--ref-txt", P("ref_txt.npy"), "--ref-alpha", "10", "--ref-beta", "-10", "--batch-size", "16", "--out", P("o.npy")], "--learner-beta", "required");
        AssertBadInput([.. EmbeddingArgs(), "--learner-loss", P("learner_loss.npy"), "--batch-size", "16", "--out", P("o.npy")], "not both", "not both");
        AssertBadInput(["--batch-size", "16", "--out", P("o.npy")], "no input", "no input");
    }

    private (int Code, string Stdout, string Stderr) AssertBadInput(string[] args, string names, string what)
    {
        var result = Invoke(args);
        Assert.Equal(SelectCommand.BadInput, result.Code);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));
        Assert.Contains(names, result.Stderr, StringComparison.Ordinal);
        Assert.Contains(what, result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(P("o.npy")), "no output on bad input");
        return result;
    }

    private static (int Code, string Stdout, string Stderr) Invoke(string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = SelectCommand.Create().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    private void MakeSample() => Assert.Equal(0, Invoke(["--make-sample", _dir]).Code);

    private string[] EmbeddingArgs() =>
    [
        .. Model("learner", P("learner_img.npy"), P("learner_txt.npy")),
        .. Model("ref", P("ref_img.npy"), P("ref_txt.npy")),
    ];

    private static string[] Model(string who, string img, string txt) =>
        [$"--{who}-img", img, $"--{who}-txt", txt, $"--{who}-alpha", "10", $"--{who}-beta", "-10"];

    private string P(string name) => Path.Combine(_dir, name);
}

/// <summary>The built `jestmesh` CLI as a separate process, as a user runs it.</summary>
[Trait("Tier", "EndToEnd")]
public sealed class BuiltCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_built_cli_exits_with_code_2_and_one_stderr_line()
    {
        // The real process, as a user runs it: exit code and output channel are part of the contract.
        string dll = Path.Combine(AppContext.BaseDirectory, "jestmesh.dll");
        Assert.True(File.Exists(dll), $"{dll} missing");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in new[] { dll, "select", "--learner-loss", P("missing.npy"), "--ref-loss", P("missing.npy"), "--batch-size", "2", "--out", P("o.npy") })
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000));
        Assert.Equal(2, process.ExitCode);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Contains($"{P("missing.npy")}: file not found", stderr, StringComparison.Ordinal);
    }

    private string P(string name) => Path.Combine(_dir, name);
}
