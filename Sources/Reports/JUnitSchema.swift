import Foundation

extension JUnitReport {
    /// `reports/pgpreflight-junit.xsd`, compiled in so that the binary can check a report
    /// (`XMLSchemaValidator.validate(xml:schemaText:)`) without the repository at hand. The
    /// file is the source of truth; a test fails when the two differ.
    public static let schema = #"""
<?xml version="1.0" encoding="UTF-8"?>
<!--
  The JUnit XML that `pgpreflight validate` writes in the junit format, exactly.

  It is a strict subset of the Jenkins xUnit junit-10.xsd that GitLab, Jenkins, GitHub and
  Azure DevOps reporters follow: every file valid here is valid there. On top of that it
  pins down what CI users may rely on:
  - totals (tests, failures, errors, skipped, time, timestamp, hostname) on every suite;
  - time in seconds with exactly three decimals; timestamps in UTC (ISO 8601, "Z");
  - suite names and test case class names pgpreflight.<server>.<database or "instance">;
  - test case names are rule ids (dotted lower-case), a warning's (not accepted) "⚠ warning: <rule id>" with
    " [database]" for a database's, unique within their suite;
  - a test case holds one <failure> (type = the rule id, or "warning" when asked for: the junit-warnings option
    set to failure), one <system-out>, or, for a
    finding a suppression or the baseline accepted, one <skipped message="reason"/>
    followed by one <system-out> with the original status and message;
  - a suite may end with one <system-out> (the run's notices, in the first suite);
  - only the properties listed below.
  XSD 1.0 cannot compare counts with the number of test cases; the test suite checks that.
-->
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="unqualified">

  <xs:simpleType name="Count">
    <xs:restriction base="xs:string">
      <xs:pattern value="0|[1-9][0-9]*"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:simpleType name="Seconds">
    <xs:restriction base="xs:string">
      <xs:pattern value="(0|[1-9][0-9]*)\.[0-9]{3}"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:simpleType name="UTCTimestamp">
    <xs:restriction base="xs:string">
      <xs:pattern value="[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"/>
    </xs:restriction>
  </xs:simpleType>

  <!-- A rule id (rules/README.md: dotted lower-case), with "#n" when a suite had it twice. -->
  <xs:simpleType name="RuleId">
    <xs:restriction base="xs:string">
      <xs:pattern value="[a-z][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:simpleType name="TestCaseName">
    <xs:restriction base="xs:string">
      <xs:pattern value="(⚠ warning: )?[a-z][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*( \[.+\])?(#[2-9]|#[1-9][0-9]+)?"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:simpleType name="SuiteName">
    <xs:restriction base="xs:string">
      <xs:pattern value="pgpreflight\..+\..+"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:simpleType name="PropertyName">
    <xs:restriction base="xs:string">
      <xs:enumeration value="pgpreflight.version"/>
      <xs:enumeration value="mode"/>
      <xs:enumeration value="strict"/>
      <xs:enumeration value="source"/>
      <xs:enumeration value="target"/>
      <xs:enumeration value="source.version"/>
      <xs:enumeration value="target.version"/>
      <xs:enumeration value="platform"/>
      <xs:enumeration value="target.profile"/>
      <xs:enumeration value="database"/>
      <xs:enumeration value="status"/>
    </xs:restriction>
  </xs:simpleType>

  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="testsuite" type="TestSuite" minOccurs="0" maxOccurs="unbounded">
          <!-- GitLab keeps only the first of two test cases with the same name. -->
          <xs:unique name="UniqueTestCaseName">
            <xs:selector xpath="testcase"/>
            <xs:field xpath="@name"/>
          </xs:unique>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="name" use="required">
        <xs:simpleType>
          <xs:restriction base="xs:string"><xs:enumeration value="pgpreflight"/></xs:restriction>
        </xs:simpleType>
      </xs:attribute>
      <xs:attribute name="tests" type="Count" use="required"/>
      <xs:attribute name="failures" type="Count" use="required"/>
      <xs:attribute name="errors" type="Count" use="required"/>
      <xs:attribute name="time" type="Seconds" use="required"/>
    </xs:complexType>
  </xs:element>

  <xs:complexType name="TestSuite">
    <xs:sequence>
      <xs:element name="properties" type="Properties"/>
      <xs:element name="testcase" type="TestCase" maxOccurs="unbounded"/>
      <xs:element name="system-out" type="xs:string" minOccurs="0"/>
    </xs:sequence>
    <xs:attribute name="name" type="SuiteName" use="required"/>
    <xs:attribute name="tests" type="Count" use="required"/>
    <xs:attribute name="failures" type="Count" use="required"/>
    <xs:attribute name="errors" type="Count" use="required"/>
    <xs:attribute name="skipped" type="Count" use="required"/>
    <xs:attribute name="time" type="Seconds" use="required"/>
    <xs:attribute name="timestamp" type="UTCTimestamp" use="required"/>
    <xs:attribute name="hostname" type="xs:string" use="required"/>
  </xs:complexType>

  <xs:complexType name="Properties">
    <xs:sequence>
      <xs:element name="property" maxOccurs="unbounded">
        <xs:complexType>
          <xs:attribute name="name" type="PropertyName" use="required"/>
          <xs:attribute name="value" type="xs:string" use="required"/>
        </xs:complexType>
      </xs:element>
    </xs:sequence>
  </xs:complexType>

  <xs:complexType name="TestCase">
    <xs:choice>
      <xs:element name="failure" type="Failure"/>
      <xs:element name="system-out" type="xs:string"/>
      <xs:sequence>
        <xs:element name="skipped" type="Skipped"/>
        <xs:element name="system-out" type="xs:string"/>
      </xs:sequence>
    </xs:choice>
    <xs:attribute name="classname" type="SuiteName" use="required"/>
    <xs:attribute name="name" type="TestCaseName" use="required"/>
    <xs:attribute name="time" type="Seconds" use="required"/>
  </xs:complexType>

  <xs:complexType name="Failure">
    <xs:simpleContent>
      <xs:extension base="xs:string">
        <xs:attribute name="message" type="xs:string" use="required"/>
        <xs:attribute name="type" type="RuleId" use="required"/>
      </xs:extension>
    </xs:simpleContent>
  </xs:complexType>

  <!-- An accepted finding: the message is the reason it was accepted. -->
  <xs:complexType name="Skipped">
    <xs:attribute name="message" type="xs:string" use="required"/>
  </xs:complexType>
</xs:schema>
"""#
}
