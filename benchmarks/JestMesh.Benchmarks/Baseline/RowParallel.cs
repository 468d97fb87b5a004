namespace JestMesh.Benchmarks.Baseline;

/// <summary>Splits a row range over the cores with one cached delegate, so a chunk costs no closure allocation.</summary>
internal abstract class RowParallel
{
    // Below this many multiply-adds a Parallel.For costs more than it saves.
    private const long SerialWork = 1L << 17;

    private readonly Action<int> _body;
    private int _rows;
    private int _parts;

    protected RowParallel()
    {
        _body = RunPart;
        MaxParts = Math.Max(1, Environment.ProcessorCount * 2);
    }

    /// <summary>Upper bound on the part index passed to <see cref="ProcessRange"/>; size per-part scratch by it.</summary>
    protected int MaxParts { get; }

    protected void Run(int rows, long workPerRow)
    {
        if (rows == 0)
        {
            return;
        }

        _rows = rows;
        _parts = rows * workPerRow < SerialWork ? 1 : Math.Min(MaxParts, Math.Max(1, rows / 16));
        if (_parts == 1)
        {
            ProcessRange(0, rows, 0);
        }
        else
        {
            Parallel.For(0, _parts, _body);
        }
    }

    /// <summary>Processes rows [lo, hi) using scratch of part <paramref name="part"/>; rows are computed by exactly one part, so results do not depend on the split.</summary>
    protected abstract void ProcessRange(int lo, int hi, int part);

    private void RunPart(int part)
    {
        int lo = (int)((long)_rows * part / _parts);
        int hi = (int)((long)_rows * (part + 1) / _parts);
        ProcessRange(lo, hi, part);
    }
}
