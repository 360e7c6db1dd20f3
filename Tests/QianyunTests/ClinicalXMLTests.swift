import ClinicalXML
import Foundation
import HL7v2
import Testing

/// A small CDA document as a Guizhou hospital would send it: Chinese names, the national ID
/// number as the patient id, one lab result and one diagnosis.
enum CDASamples {
    static func document(
        id: String = "DOC-1", setId: String = "SET-1", version: Int = 1, patientId: String = "110101199003074477",
        extraHeader: String = "", extraBody: String = ""
    ) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
          <realmCode code="CN"/>
          <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
          <id root="2.16.156.10011.1.1" extension="\(id)"/>
          <code code="C0032" codeSystem="2.16.156.10011.2.4" displayName="门(急)诊病历"/>
          <title>门诊病历</title>
          <effectiveTime value="20261201093000+0800"/>
          <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
          <languageCode code="zh-CN"/>
          <setId root="2.16.156.10011.1.1" extension="\(setId)"/>
          <versionNumber value="\(version)"/>
          <recordTarget>
            <patientRole>
              <id root="2.16.156.10011.1.3" extension="\(patientId)"/>
              <id root="2.16.156.10011.1.12" extension="MRN-0001"/>
              <telecom value="tel:13985012345"/>
              <patient>
                <name>张三</name>
                <administrativeGenderCode code="1" codeSystem="2.16.156.10011.2.3.3.4" displayName="男性"/>
                <birthTime value="19900307"/>
              </patient>
            </patientRole>
          </recordTarget>
          <author>
            <time value="20261201093000+0800"/>
            <assignedAuthor>
              <id root="2.16.156.10011.1.4" extension="D001"/>
              <assignedPerson><name>李医生</name></assignedPerson>
              <representedOrganization><id root="2.16.156.10011.1.5" extension="5201020001"/><name>贵阳市第一人民医院</name></representedOrganization>
            </assignedAuthor>
          </author>
          <custodian>
            <assignedCustodian>
              <representedCustodianOrganization>
                <id root="2.16.156.10011.1.5" extension="5201020001"/>
                <name>贵阳市第一人民医院</name>
              </representedCustodianOrganization>
            </assignedCustodian>
          </custodian>
          \(extraHeader)
          <component>
            <structuredBody>
              <component>
                <section>
                  <code code="30954-2" codeSystem="2.16.840.1.113883.6.1" displayName="检验结果"/>
                  <text>空腹血糖 7.8 mmol/L</text>
                  <entry>
                    <organizer classCode="BATTERY" moodCode="EVN">
                      <statusCode code="completed"/>
                      <component>
                        <observation classCode="OBS" moodCode="EVN">
                          <id root="2.16.156.10011.1.6" extension="LAB-1"/>
                          <code code="1558-6" codeSystem="2.16.840.1.113883.6.1" displayName="空腹血糖"/>
                          <statusCode code="completed"/>
                          <effectiveTime value="20261201080000+0800"/>
                          <value xsi:type="PQ" value="7.8" unit="mmol/L"/>
                          <interpretationCode code="H" codeSystem="2.16.840.1.113883.5.83"/>
                          <referenceRange><observationRange><value xsi:type="IVL_PQ"><low value="3.9" unit="mmol/L"/><high value="6.1" unit="mmol/L"/></value></observationRange></referenceRange>
                        </observation>
                      </component>
                    </organizer>
                  </entry>
                </section>
              </component>
              <component>
                <section>
                  <code code="29548-5" codeSystem="2.16.840.1.113883.6.1" displayName="诊断"/>
                  <entry>
                    <observation classCode="OBS" moodCode="EVN">
                      <code code="DE05.01.024.00" codeSystem="2.16.156.10011.2.2.1" displayName="诊断代码"/>
                      <value xsi:type="CD" code="E11.9" codeSystem="2.16.156.10011.2.3.3.11" displayName="2型糖尿病"/>
                    </observation>
                  </entry>
                  \(extraBody)
                </section>
              </component>
            </structuredBody>
          </component>
        </ClinicalDocument>
        """
    }

    static var schemaPath: String { Corpus.root + "/cda/schema/extensions/SDTC/infrastructure/cda/CDA_SDTC.xsd" }
    static var schemaAvailable: Bool { FileManager.default.fileExists(atPath: schemaPath) }
    static let schema: XMLSchema? = try? XMLSchema(path: schemaPath)
}

@Suite struct ClinicalXMLTests {
    func parse(_ text: String, limits: XMLLimits = XMLLimits()) throws(XMLProblem) -> XMLDocument {
        try XMLDocument.parse(Array(text.utf8), limits: limits)
    }

    @Test func readsTheCDAHeaderAndEntries() throws {
        let document = try CDADocument(parse(CDASamples.document()))
        let header = document.header
        #expect(header.id == CDAIdentifier(root: "2.16.156.10011.1.1", extension: "DOC-1"))
        #expect(header.code.code == "C0032" && header.code.displayName == "门(急)诊病历")
        #expect(header.title == "门诊病历" && header.effectiveTime == "20261201093000+0800" && header.version == 1)
        #expect(header.setId?.extension == "SET-1")
        #expect(header.patient.ids.map(\.extension) == ["110101199003074477", "MRN-0001"])
        #expect(header.patient.name == "张三" && header.patient.gender?.code == "1" && header.patient.birthTime == "19900307")
        #expect(header.author?.name == "李医生" && header.author?.organization == "贵阳市第一人民医院")
        #expect(header.custodian?.ids.first?.extension == "5201020001")
        #expect(document.entries.count == 2)
        let glucose = document.entries[0]
        #expect(glucose.code?.code == "1558-6" && glucose.value == .quantity(value: "7.8", unit: "mmol/L"))
        #expect(glucose.interpretation == "H" && glucose.referenceRange == "3.9–6.1 mmol/L" && glucose.status == "completed")
        #expect(glucose.sectionCode?.code == "30954-2" && glucose.line > 1)
        let diagnosis = document.entries[1]
        #expect(diagnosis.value == .coded(CDACode(code: "E11.9", codeSystem: "2.16.156.10011.2.3.3.11", displayName: "2型糖尿病")))
    }

    @Test func structuredLatinNamesAndXPath() throws {
        let text = CDASamples.document().replacingOccurrences(
            of: "<name>张三</name>", with: "<name><given>Eve</given><family>Everywoman</family></name>")
        let document = try parse(text)
        #expect(try CDADocument(document).header.patient.name == "Eve Everywoman")
        let ns = ["v3": CDA.namespace]
        #expect(try document.string("/v3:ClinicalDocument/v3:title", namespaces: ns) == "门诊病历")
        #expect(try document.elements("//v3:observation", namespaces: ns).count == 2)
        #expect(throws: XMLProblem.self) { try document.elements("//v3:[", namespaces: ns) }
    }

    @Test func notACDADocumentOrMissingWhatItMustHave() throws {
        #expect(throws: CDAProblem.notClinicalDocument(root: "note", namespace: nil)) { try CDADocument(parse("<note/>")) }
        let noPatient = CDASamples.document().replacingOccurrences(
            of: "<id root=\"2.16.156.10011.1.3\" extension=\"110101199003074477\"/>", with: ""
        )
        .replacingOccurrences(of: "<id root=\"2.16.156.10011.1.12\" extension=\"MRN-0001\"/>", with: "")
        #expect(throws: CDAProblem.missing("patient id (recordTarget/patientRole/id)")) { try CDADocument(parse(noPatient)) }
    }

    // MARK: hostile and malformed input

    @Test func externalEntitiesAndDocumentTypesAreRefusedUnread() throws {
        let attacks = [
            // XXE: a local file and a URL.
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"http://127.0.0.1:9/evil\">]><r>&x;</r>",
            // An external DTD, and a parameter entity that would fetch one.
            "<?xml version=\"1.0\"?><!DOCTYPE ClinicalDocument SYSTEM \"http://127.0.0.1:9/cda.dtd\"><ClinicalDocument/>",
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1:9/p.dtd\"> %p;]><r/>",
            // Billion laughs.
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                + (1...9).map { "<!ENTITY lol\($0) \"" + String(repeating: "&lol\($0 == 1 ? "" : String($0 - 1));", count: 10) + "\">" }
                .joined() + "]><lolz>&lol9;</lolz>",
            // A bare DOCTYPE with nothing in it is refused too: no clinical document needs one.
            "<!DOCTYPE r><r/>",
        ]
        for attack in attacks {
            #expect(throws: XMLProblem.self) { try parse(attack) }
            do {
                _ = try parse(attack)
            } catch {
                guard case .documentTypeDeclaration = error else {
                    Issue.record("expected a refused document type, got \(error)")
                    continue
                }
            }
        }
        // The same refusal when the document is UTF-16, where a byte scan for "<!DOCTYPE" would miss it.
        var utf16: [UInt8] = [0xFF, 0xFE]
        for unit in "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>".utf16 {
            utf16 += [UInt8(unit & 0xFF), UInt8(unit >> 8)]
        }
        #expect(throws: XMLProblem.documentTypeDeclaration(line: 1)) { try XMLDocument.parse(utf16) }
    }

    @Test func malformedInputGetsATypedErrorWithItsLine() throws {
        #expect(throws: XMLProblem.empty) { try XMLDocument.parse([]) }
        do {
            _ = try parse("<a>\n<b>\n</a>")
            Issue.record("a mismatched tag parsed")
        } catch {
            guard case .notWellFormed(let line, _, let message) = error else { throw error }
            #expect(line == 3 && !message.isEmpty)
        }
        var garbage = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 1...300, using: &garbage)).map { _ in UInt8.random(in: 0...255, using: &garbage) }
            #expect(throws: XMLProblem.self) { try XMLDocument.parse(bytes) }
        }
        // Truncated anywhere: never a crash, always a typed error.
        let whole = Array(CDASamples.document().utf8)
        for cut in stride(from: 1, to: whole.count - 20, by: 97) {
            #expect(throws: XMLProblem.self) { try XMLDocument.parse(Array(whole[..<cut])) }
        }
    }

    @Test func sizeDepthAndElementLimits() throws {
        #expect(throws: XMLProblem.tooLarge(bytes: 2_000_001, limit: 2_000_000)) {
            try XMLDocument.parse([UInt8](repeating: 0x20, count: 2_000_001), limits: XMLLimits(maximumBytes: 2_000_000))
        }
        // Deeper than libxml2's own ceiling, and deeper than ours.
        let deep = String(repeating: "<a>", count: 10_000) + String(repeating: "</a>", count: 10_000)
        #expect(throws: XMLProblem.self) { try parse(deep) }
        let fifty = String(repeating: "<a>", count: 50) + String(repeating: "</a>", count: 50)
        #expect(throws: XMLProblem.tooDeep(line: 1, limit: 40)) { try parse(fifty, limits: XMLLimits(maximumDepth: 40)) }
        #expect(try parse(fifty).root?.name == "a")
        let wide = "<r>" + String(repeating: "<e/>", count: 1_001) + "</r>"
        #expect(throws: XMLProblem.tooManyElements(limit: 1_000)) { try parse(wide, limits: XMLLimits(maximumElements: 1_000)) }
        // A 20 MB text node is text, not a problem (a base64 attachment, say).
        let big = "<r>" + String(repeating: "QUJD", count: 5_000_000) + "</r>"
        #expect(try parse(big).root?.text.utf8.count == 20_000_000)
    }

    @Test func chineseEncodingsAreReadAsDeclared() throws {
        let text = CDASamples.document().replacingOccurrences(of: "encoding=\"UTF-8\"", with: "encoding=\"GB18030\"")
        // GB 18030 bytes for the document, through the HL7 v2 library's own table.
        let bytes = HL7Charset.gb18030.encode(text)
        #expect(bytes.count < text.utf8.count)
        let document = try CDADocument(XMLDocument.parse(bytes))
        #expect(document.header.patient.name == "张三" && document.header.author?.organization == "贵阳市第一人民医院")
    }

    // MARK: schema validation

    @Test(.enabled(if: CDASamples.schemaAvailable, "the CDA schema in ../shared/corpora/cda is not here"))
    func schemaValidationNamesLines() throws {
        let schema = try #require(CDASamples.schema)
        #expect(schema.validate(try parse(CDASamples.document())).isEmpty)
        // An element CDA does not have, and a required one taken out.
        let wrong = CDASamples.document(extraHeader: "<notACDAElement/>").replacingOccurrences(
            of: "<effectiveTime value=\"20261201093000+0800\"/>\n", with: "\n")
        let findings = schema.validate(try parse(wrong))
        #expect(!findings.isEmpty)
        #expect(findings.allSatisfy { $0.line > 1 && $0.severity == .error })
        #expect(findings.contains { $0.message.contains("effectiveTime") || $0.message.contains("notACDAElement") })
        #expect(throws: XMLSchemaLoadError.self) { try XMLSchema(path: "/nonexistent/CDA.xsd") }
    }

    /// Every XML file of `../shared/corpora/cda` (HL7's CDA and C-CDA examples, most of them
    /// template-level fragments): each parses or is refused with its line; each ClinicalDocument
    /// in the CDA namespace reads as CDA; fragments whose ClinicalDocument root has no namespace
    /// are refused as not CDA; and the documents that pass the schema are the 9 of 12 that lxml
    /// (libxml2 under Python, another binding of the same validator) accepts.
    @Test(.enabled(if: CDASamples.schemaAvailable, "../shared/corpora/cda is not here"))
    func theCDACorpus() throws {
        let schema = try #require(CDASamples.schema)
        let files = Corpus.files(in: Corpus.root + "/cda", suffixes: [".xml", ".XML"]).filter { !$0.name.hasPrefix("schema/") }
        #expect(files.count > 400)
        var documents = 0
        var valid = 0
        var refused: [String] = []
        var withoutNamespace = 0
        for file in files {
            let parsed: XMLDocument
            do {
                parsed = try XMLDocument.parse(file.bytes)
            } catch {
                guard case .notWellFormed(let line, _, _) = error, line > 0 else {
                    Issue.record("\(file.name): \(error)")
                    continue
                }
                refused.append(file.name)
                continue
            }
            guard parsed.root?.name == "ClinicalDocument" else { continue }
            guard parsed.root?.namespace == CDA.namespace else {
                withoutNamespace += 1
                #expect(throws: CDAProblem.notClinicalDocument(root: "ClinicalDocument", namespace: nil)) { try CDADocument(parsed) }
                continue
            }
            documents += 1
            do {
                let cda = try CDADocument(parsed)
                #expect(!cda.header.patient.ids.isEmpty)
            } catch {
                Issue.record("\(file.name): \(error)")
            }
            if schema.validate(parsed).isEmpty { valid += 1 }
        }
        #expect(refused.count == 1, "not well-formed: \(refused)")
        #expect(withoutNamespace == 10)
        #expect(documents == 12 && valid == 9, "\(valid) of \(documents) documents valid")
    }
}
