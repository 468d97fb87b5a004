namespace JestMesh.Cli.Tests.Demo;

/// <summary>Reads the runs table of report.md back (independently of the writer): run name → column → cell.</summary>
internal static class ReportTable
{
    public static Dictionary<string, Dictionary<string, string>> Rows(string markdown)
    {
        var lines = markdown.Split('\n').Select(l => l.Trim()).ToList();
        var header = lines.FindIndex(l => l.StartsWith("| run | policy |", StringComparison.Ordinal));
        Assert.True(header >= 0, "report.md has no runs table");
        var columns = Cells(lines[header]);
        var rows = new Dictionary<string, Dictionary<string, string>>();
        for (var i = header + 2; i < lines.Count && lines[i].StartsWith('|'); i++)
        {
            var cells = Cells(lines[i]);
            Assert.Equal(columns.Count, cells.Count);
            rows[cells[0]] = columns.Zip(cells).ToDictionary(p => p.First, p => p.Second);
        }

        return rows;
    }

    private static List<string> Cells(string line) => line.Trim('|').Split('|').Select(c => c.Trim()).ToList();
}
