// Parses Nextflow scripts and configs as Groovy, up to the syntax tree (Phases.CONVERSION):
// catches syntax errors (braces, strings, closures, named arguments) without resolving
// Nextflow's own names, which only Nextflow knows. Usage: groovy groovy_parse.groovy FILES...
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

def failed = 0
args.each { path ->
    def unit = new CompilationUnit()
    unit.addSource(new File(path))
    try {
        unit.compile(Phases.CONVERSION)
        println "parsed: ${path}"
    } catch (Exception e) {
        println "FAIL: ${path}: ${e.message}"
        failed++
    }
}
if (failed) {
    System.exit(1)
}
