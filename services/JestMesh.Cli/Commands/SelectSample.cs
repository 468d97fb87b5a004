using JestMesh.Data;

namespace JestMesh.Cli.Commands;

/// <summary>A synthetic super-batch for <c>./jestmesh select --make-sample DIR</c>, so select can be tried on a fresh machine.</summary>
public static class SelectSample
{
    public const int Count = 2048;
    public const int Dim = 64;
    public const float Alpha = 10f;
    public const float Beta = -10f;

    /// <summary>Writes the .npy files (N = <paramref name="count"/> pairs) into <paramref name="dir"/> and prints the commands that select from them.</summary>
    public static void Write(string dir, TextWriter stdout, int count = Count)
    {
        if (count < 16)
        {
            throw new SelectInputException($"--sample-size {count}: a sample needs at least 16 pairs");
        }

        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SelectInputException($"{dir}: cannot create the sample directory: {e.Message}");
        }

        var (li, lt, ri, rt) = Embeddings(new Random(2024), count);
        string P(string name) => System.IO.Path.Combine(dir, name);
        NpyFile.WriteFloat32(P("learner_img.npy"), li, count, Dim);
        NpyFile.WriteFloat32(P("learner_txt.npy"), lt, count, Dim);
        NpyFile.WriteFloat32(P("ref_img.npy"), ri, count, Dim);
        NpyFile.WriteFloat32(P("ref_txt.npy"), rt, count, Dim);
        // Per-example mode uses each model's own matching-pair loss, −log σ(α⟨img_i, txt_i⟩ + β).
        NpyFile.WriteFloat32(P("learner_loss.npy"), PairLosses(li, lt), count);
        NpyFile.WriteFloat32(P("ref_loss.npy"), PairLosses(ri, rt), count);
        stdout.WriteLine($"wrote a synthetic super-batch of N = {count} pairs (d = {Dim}, α = {Alpha}, β = {Beta}) to {dir}");
        stdout.WriteLine("embedding mode (sigmoid learnability, f = 0.75):");
        stdout.WriteLine($"  ./jestmesh select --learner-img {P("learner_img.npy")} --learner-txt {P("learner_txt.npy")} --learner-alpha {Alpha} --learner-beta {Beta} " +
            $"--ref-img {P("ref_img.npy")} --ref-txt {P("ref_txt.npy")} --ref-alpha {Alpha} --ref-beta {Beta} --batch-size {count / 4} --out {P("selected.npy")} --summary {P("summary.json")}");
        stdout.WriteLine("per-example mode:");
        stdout.WriteLine($"  ./jestmesh select --learner-loss {P("learner_loss.npy")} --ref-loss {P("ref_loss.npy")} --batch-size {count / 4} --out {P("selected_per_example.npy")}");
    }

    /// <summary>16 clusters; a third of the captions come from another cluster (noisy web pairs); the reference sees clusters sharply, the learner through more noise.</summary>
    private static (float[] Li, float[] Lt, float[] Ri, float[] Rt) Embeddings(Random random, int count)
    {
        const int clusters = 16;
        var centres = new float[clusters * Dim];
        for (int i = 0; i < centres.Length; i++)
        {
            centres[i] = Normal(random);
        }

        var m = new float[4][];
        for (int a = 0; a < 4; a++)
        {
            m[a] = new float[count * Dim];
        }

        for (int i = 0; i < count; i++)
        {
            int c = random.Next(clusters);
            int ct = random.NextDouble() < 0.33 ? random.Next(clusters) : c;
            for (int t = 0; t < Dim; t++)
            {
                int o = (i * Dim) + t;
                m[0][o] = centres[(c * Dim) + t] + Normal(random);
                m[1][o] = centres[(ct * Dim) + t] + Normal(random);
                m[2][o] = centres[(c * Dim) + t] + (0.3f * Normal(random));
                m[3][o] = centres[(ct * Dim) + t] + (0.3f * Normal(random));
            }
        }

        foreach (var a in m)
        {
            for (int i = 0; i < count; i++)
            {
                var row = a.AsSpan(i * Dim, Dim);
                float norm = System.Numerics.Tensors.TensorPrimitives.Norm(row);
                System.Numerics.Tensors.TensorPrimitives.Divide(row, norm, row);
            }
        }

        return (m[0], m[1], m[2], m[3]);
    }

    private static float[] PairLosses(float[] img, float[] txt)
    {
        var loss = new float[img.Length / Dim];
        for (int i = 0; i < loss.Length; i++)
        {
            double u = (Alpha * System.Numerics.Tensors.TensorPrimitives.Dot(img.AsSpan(i * Dim, Dim), txt.AsSpan(i * Dim, Dim))) + Beta;
            loss[i] = (float)(Math.Max(-u, 0) + Math.Log(1 + Math.Exp(-Math.Abs(u))));
        }

        return loss;
    }

    private static float Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
