using System.Reflection;
using Xunit;

namespace JestMesh.TestKit;

/// <summary>
/// The test tiers, each runnable alone with <c>dotnet test --filter Tier=NAME</c> (scripts/test.sh --tier NAME).
/// Every test class carries exactly one class-level <c>[Trait("Tier", ...)]</c>.
/// </summary>
public static class Tiers
{
    /// <summary>The trait name.</summary>
    public const string Name = "Tier";

    /// <summary>No broker, no other process.</summary>
    public const string Unit = "Unit";

    /// <summary>Needs the RabbitMQ broker (the shared one of the test run, or a private one it starts).</summary>
    public const string Broker = "Broker";

    /// <summary>Real service hosts with the trainer or the whole pipeline, a built CLI process, or the quick demo.</summary>
    public const string EndToEnd = "EndToEnd";

    public static IReadOnlyList<string> All { get; } = [Unit, Broker, EndToEnd];

    /// <summary>Test classes of <paramref name="assembly"/> without exactly one class-level tier trait naming a known tier, with what they carry.</summary>
    public static IReadOnlyList<string> Unclassified(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        var problems = new List<string>();
        foreach (var type in assembly.GetTypes().Where(IsTestClass))
        {
            var tiers = type.GetCustomAttributesData()
                .Where(a => a.AttributeType == typeof(TraitAttribute) && a.ConstructorArguments.Count == 2 && (string?)a.ConstructorArguments[0].Value == Name)
                .Select(a => (string?)a.ConstructorArguments[1].Value)
                .ToList();
            if (tiers.Count != 1 || !All.Contains(tiers[0]))
            {
                problems.Add($"{type.FullName}: [{string.Join(", ", tiers.Select(t => $"Trait(\"{Name}\", \"{t}\")"))}]");
            }
        }
        return problems;
    }

    private static bool IsTestClass(Type type) =>
        type.IsClass && !type.IsAbstract
        && type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Any(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any());
}
